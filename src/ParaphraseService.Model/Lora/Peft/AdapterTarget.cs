using ParaphraseService.Model.GptJ;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// What a base model offers adapters: its architecture ("gptj"), hidden size, layer count, and every module path a
/// LoRA may target with its Linear shape, e.g. "transformer.h.0.attn.q_proj" -> (In: 4096, Out: 4096). Adapters are
/// checked against it when they are loaded.
/// </summary>
public sealed record AdapterTarget(string Architecture, int HiddenSize, int LayerCount, IReadOnlyDictionary<string, (long In, long Out)> Modules)
{
    /// <summary>
    /// GPT-J's LoRA targets, named as in its Hugging Face checkpoints: per layer attn.q_proj, k_proj, v_proj, out_proj
    /// (n_embd -> n_embd), mlp.fc_in (n_embd -> n_inner) and mlp.fc_out (n_inner -> n_embd). The output layer
    /// lm_head is not offered, as PEFT's "all-linear" leaves out a model's output layer.
    /// </summary>
    public static AdapterTarget ForGptJ(GptJConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = config.HiddenSize, inner = config.EffectiveInnerSize;
        var modules = new SortedDictionary<string, (long In, long Out)>(StringComparer.Ordinal);
        for (var layer = 0; layer < config.LayerCount; layer++)
        {
            var prefix = $"transformer.h.{layer}.";
            foreach (var projection in (string[])["q_proj", "k_proj", "v_proj", "out_proj"])
            {
                modules[prefix + "attn." + projection] = (e, e);
            }
            modules[prefix + "mlp.fc_in"] = (e, inner);
            modules[prefix + "mlp.fc_out"] = (inner, e);
        }
        return new AdapterTarget("gptj", config.HiddenSize, config.LayerCount, modules);
    }

    /// <summary>
    /// The target_modules PEFT picks when a config has none (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING);
    /// null for an architecture PEFT has no default for.
    /// </summary>
    public IReadOnlyList<string>? DefaultTargetModules => Architecture switch
    {
        "gptj" => ["q_proj", "v_proj"],
        _ => null,
    };
}
