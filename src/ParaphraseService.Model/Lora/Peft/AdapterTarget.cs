namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// What a base model offers adapters: its architecture ("gptj"), hidden size, layer count, and every module path a
/// LoRA may target with its Linear shape, e.g. "transformer.h.0.attn.q_proj" -> (In: 4096, Out: 4096). Adapters are
/// checked against it when they are loaded. Each family declares its own (GptJFamily.LoraTargets, ...).
/// </summary>
/// <param name="Conv1D">The adaptable modules are Hugging Face Conv1D layers (GPT-2), for which PEFT forces
/// <c>fan_in_fan_out</c> to true. lora_A [r, in] and lora_B [out, r] are stored as for a Linear either way: the flag
/// only says the base weight is [in, out] when a delta is merged into it.</param>
public sealed record AdapterTarget(string Architecture, int HiddenSize, int LayerCount, IReadOnlyDictionary<string, (long In, long Out)> Modules,
    bool Conv1D = false)
{
    /// <summary>
    /// The target_modules PEFT picks when a config has none (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING),
    /// as the family declares them; null for an architecture PEFT has no default for.
    /// </summary>
    public IReadOnlyList<string>? DefaultTargetModules { get; init; }

    /// <summary>
    /// The same modules in every layer, "transformer.h.N." + module, with their (in, out) shapes: how every family
    /// this service runs lays out its targets.
    /// </summary>
    public static AdapterTarget PerLayer(string architecture, int hiddenSize, int layerCount,
        IReadOnlyList<(string Module, long In, long Out)> layerModules)
    {
        ArgumentNullException.ThrowIfNull(layerModules);
        var modules = new SortedDictionary<string, (long In, long Out)>(StringComparer.Ordinal);
        for (var layer = 0; layer < layerCount; layer++)
        {
            foreach (var (module, inFeatures, outFeatures) in layerModules)
                modules[$"transformer.h.{layer}.{module}"] = (inFeatures, outFeatures);
        }
        return new AdapterTarget(architecture, hiddenSize, layerCount, modules);
    }
}
