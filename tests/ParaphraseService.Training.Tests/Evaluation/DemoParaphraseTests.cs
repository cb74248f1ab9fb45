using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using Xunit.Abstractions;

namespace ParaphraseService.Training.Tests.Evaluation;

/// <summary>The demo model with its bundled adapter rewrites sentences it never saw, as /paraphrase would ask it to.</summary>
public class DemoParaphraseTests(ITestOutputHelper output)
{
    private static readonly string[] s_inputs =
    [
        "The meeting has been moved to Friday afternoon .",
        "In 1998 , the company opened its first office in London .",
        "She was born in Paris and grew up in a small village in the south of France .",
    ];

    [Fact]
    public void TheBundledAdapterLoadsAndItsSampledRewritesAreNotCopies()
    {
        using var demo = DemoModel.Load(new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var bundled = Assert.IsType<BundledAdapter>(demo.BundledAdapter);
        Assert.Equal(DemoModel.AdapterName, bundled.Name);
        var (adapter, _, warnings) = demo.Adapters!.LoadFolder(bundled.Folder, bundled.Name);
        Assert.Empty(warnings);
        var metadata = AdapterMetadata.Load(Path.Combine(bundled.Folder, AdapterMetadata.FileName));
        var template = PromptTemplate.ForAdapter(metadata.PromptTemplate);
        Assert.Equal(PromptTemplate.FineTuneTemplateText, template.Template);

        // The service's defaults: three candidates at temperature 0.8, top-p 0.95, 48 new tokens; candidate i seeded seed + i.
        var generator = demo.CreateGenerator();
        foreach (var input in s_inputs)
        {
            var prompt = demo.Tokenizer.Encode(template.Render(input));
            var options = Enumerable.Range(0, 3).Select(i => new GenerationOptions
            {
                Temperature = 0.8, TopP = 0.95, MaxNewTokens = 48, StopSequences = [template.EndMarker], Seed = 42 + i,
            }).ToList();
            var results = generator.Generate(options.Select(_ => (IReadOnlyList<int>)prompt).ToList(), options,
                adapters: options.Select(_ => (LoraAdapter?)adapter).ToList());
            var candidates = results.Select(r => template.Cut(r.Text)).ToList();
            output.WriteLine($"{input}\n  -> {string.Join("\n  -> ", candidates)}");
            var rewrites = candidates.Where(c => c is not null && !string.Equals(DatasetPreparation.Normalize(c), DatasetPreparation.Normalize(input), StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.NotEmpty(rewrites);
            // A rewrite of this input, not text from elsewhere: one candidate at least reuses half its longer words.
            // (Sampled at 0.8, a model this small often drifts after a few words; the base alone shares none.)
            var words = input.Split(' ').Where(w => w.Length > 3).ToHashSet(StringComparer.OrdinalIgnoreCase);
            Assert.Contains(rewrites, r => r!.Split(' ').Count(words.Contains) >= words.Count / 2);
        }
    }
}
