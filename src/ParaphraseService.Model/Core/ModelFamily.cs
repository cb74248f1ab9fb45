using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Core;

/// <summary>
/// One supported architecture: how to read its config.json, build its model, name its LoRA targets and read its files.
/// Each family declares its own in its folder (GptJFamily, GptNeoFamily, Gpt2Family); the model_type registry
/// (Families/ModelFamilies) only lists them.
/// </summary>
/// <param name="ModelType">config.json's <c>model_type</c>.</param>
/// <param name="Name">The family's usual name, for messages ("GPT-Neo").</param>
public sealed record ModelFamily(
    string ModelType,
    string Name,
    Func<string, ICausalLMConfig> LoadConfig,
    Func<ICausalLMConfig, LayerFactory, CausalLM> Create,
    Func<ICausalLMConfig, AdapterTarget> AdapterTarget,
    CheckpointConventions Checkpoint)
{
    /// <summary>A family whose config is a <typeparamref name="TConfig"/>: the casts from <see cref="ICausalLMConfig"/> happen here, once.</summary>
    public static ModelFamily Of<TConfig>(string modelType, string name, Func<string, TConfig> loadConfig,
        Func<TConfig, LayerFactory, CausalLM> create, Func<TConfig, AdapterTarget> adapterTarget, CheckpointConventions checkpoint)
        where TConfig : class, ICausalLMConfig =>
        new(modelType, name, loadConfig, (config, layers) => create(As<TConfig>(config), layers), config => adapterTarget(As<TConfig>(config)), checkpoint);

    private static T As<T>(ICausalLMConfig config) where T : class, ICausalLMConfig =>
        config as T ?? throw new ArgumentException($"A {config.GetType().Name} is not a {typeof(T).Name} (model_type '{config.ModelType}').");
}
