using ParaphraseService.Model.Core;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.GptNeo;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Families;

/// <summary>The architectures this service runs, chosen by config.json's <c>model_type</c>.</summary>
public static class ModelFamilies
{
    public static ModelFamily GptJ { get; } = new("gptj", "GPT-J",
        GptJConfig.Load,
        (config, layers) => new GptJForCausalLM(As<GptJConfig>(config), layers),
        config => Lora.Peft.AdapterTarget.ForGptJ(As<GptJConfig>(config)),
        CheckpointConventions.Identity);

    public static ModelFamily GptNeo { get; } = new("gpt_neo", "GPT-Neo",
        path => ConfigFile.Load<GptNeoConfig>(path, "GPT-Neo"),
        (config, layers) => new GptNeoForCausalLM(As<GptNeoConfig>(config), layers),
        config => Lora.Peft.AdapterTarget.ForGptNeo(As<GptNeoConfig>(config)),
        new CheckpointConventions(TiedHeadKey: "lm_head.weight"));

    public static ModelFamily Gpt2 { get; } = new("gpt2", "GPT-2",
        path => ConfigFile.Load<Gpt2Config>(path, "GPT-2"),
        (config, layers) => new Gpt2ForCausalLM(As<Gpt2Config>(config), layers),
        config => Lora.Peft.AdapterTarget.ForGpt2(As<Gpt2Config>(config)),
        new CheckpointConventions("transformer.", Gpt2ForCausalLM.IsConv1DWeight, "lm_head.weight"));

    public static IReadOnlyList<ModelFamily> Supported { get; } = [GptJ, GptNeo, Gpt2];

    /// <summary>"'gptj' (GPT-J), 'gpt_neo' (GPT-Neo), 'gpt2' (GPT-2)", for messages.</summary>
    public static string SupportedList => string.Join(", ", Supported.Select(f => $"'{f.ModelType}' ({f.Name})"));

    /// <exception cref="NotSupportedException">No supported family has that model_type; the message lists those that do.</exception>
    public static ModelFamily Get(string modelType) =>
        Supported.FirstOrDefault(f => f.ModelType == modelType)
        ?? throw new NotSupportedException($"model_type '{modelType}' is not supported; supported model types: {SupportedList}.");

    /// <summary>Reads a config.json, picks the family from its <c>model_type</c>, and validates it.</summary>
    /// <remarks>A config without model_type is read as GPT-J, as this service always did.</remarks>
    /// <exception cref="InvalidDataException">Missing or unreadable file, an unsupported model_type (listing the supported ones), invalid values.</exception>
    public static (ModelFamily Family, ICausalLMConfig Config) LoadConfig(string path)
    {
        var modelType = ConfigFile.ModelType(path) ?? GptJ.ModelType;
        var family = Supported.FirstOrDefault(f => f.ModelType == modelType)
            ?? throw new InvalidDataException($"{path}: model_type '{modelType}' is not supported; supported model types: {SupportedList}.");
        return (family, family.LoadConfig(path));
    }

    /// <summary>Builds the model of the config's family.</summary>
    public static CausalLM Create(ICausalLMConfig config, LayerFactory layers) => Get(config.ModelType).Create(config, layers);

    private static T As<T>(ICausalLMConfig config) where T : class, ICausalLMConfig =>
        config as T ?? throw new ArgumentException($"A {config.GetType().Name} is not a {typeof(T).Name} (model_type '{config.ModelType}').");
}
