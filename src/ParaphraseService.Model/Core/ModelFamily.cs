using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Core;

/// <summary>One supported architecture: how to read its config.json, build its model, name its LoRA targets and read its files.</summary>
/// <param name="ModelType">config.json's <c>model_type</c>.</param>
/// <param name="Name">The family's usual name, for messages ("GPT-Neo").</param>
public sealed record ModelFamily(
    string ModelType,
    string Name,
    Func<string, ICausalLMConfig> LoadConfig,
    Func<ICausalLMConfig, LayerFactory, CausalLM> Create,
    Func<ICausalLMConfig, AdapterTarget> AdapterTarget,
    CheckpointConventions Checkpoint);
