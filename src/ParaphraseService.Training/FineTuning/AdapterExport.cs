using System.Text.Json;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.FineTuning;

/// <summary>Writes a trained adapter as a PEFT folder with our metadata beside it (template, data, settings, metrics).</summary>
public static class AdapterExport
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static void Save(string folder, LoraAdapter adapter, LoraTrainingOptions options, AdapterTarget target, string baseModel,
        PromptTemplate template, DatasetSummary dataset, IReadOnlyDictionary<string, double> metrics)
    {
        var config = new PeftLoraConfig
        {
            R = options.Rank,
            LoraAlpha = options.Alpha,
            LoraDropout = options.Dropout,
            UseRslora = options.UseRsLora,
            TargetModules = options.TargetModules is null ? PeftTargetModules.AllLinear : PeftTargetModules.FromNames(options.TargetModules),
            BaseModelNameOrPath = baseModel,
            // What PEFT writes for the base's layer kind: true for GPT-2's Conv1D targets, false for nn.Linear.
            FanInFanOut = target.Conv1D,
        };
        var metadata = new AdapterMetadata
        {
            Origin = AdapterOrigin.FineTune,
            Created = DateTimeOffset.UtcNow,
            PromptTemplate = template.Template,
            Training = JsonSerializer.SerializeToElement(new { Hyperparameters = options, Dataset = dataset, EndMarker = template.EndMarker }, s_json),
            Metrics = metrics,
        };
        var modules = adapter.Matrices.ToDictionary(m => m.Key, m => new LoraWeights(m.Value.A, m.Value.B));
        using var peft = PeftAdapter.Create(adapter.Name, config, modules, target, metadata);
        PeftAdapterFiles.Save(folder, peft);
    }
}
