using ParaphraseService.Model.Core;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.GptNeo;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Families;

/// <summary>
/// The architectures this service runs, chosen by config.json's <c>model_type</c>. Each family describes itself in its
/// own folder (<see cref="GptJFamily"/>, <see cref="GptNeoFamily"/>, <see cref="Gpt2Family"/>); this list is the one
/// place that names them all, so it is the only code that imports every family, and nothing in Core or in a family
/// imports it. Adding a family: its folder, its descriptor, one entry here.
/// </summary>
public static class ModelFamilies
{
    public static ModelFamily GptJ => GptJFamily.Family;

    public static ModelFamily GptNeo => GptNeoFamily.Family;

    public static ModelFamily Gpt2 => Gpt2Family.Family;

    public static IReadOnlyList<ModelFamily> Supported { get; } = [GptJFamily.Family, GptNeoFamily.Family, Gpt2Family.Family];

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

    extension(AdapterTarget)
    {
        /// <summary>The targets of a model of any supported family, found by the config's <c>model_type</c>.</summary>
        /// <remarks>Here rather than on <see cref="AdapterTarget"/> itself: Lora/ sits below the families and must not import them.</remarks>
        public static AdapterTarget For(ICausalLMConfig config)
        {
            ArgumentNullException.ThrowIfNull(config);
            return Get(config.ModelType).AdapterTarget(config);
        }
    }
}
