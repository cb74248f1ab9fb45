using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.GptNeo;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// What a base model offers adapters: its architecture ("gptj"), hidden size, layer count, and every module path a
/// LoRA may target with its Linear shape, e.g. "transformer.h.0.attn.q_proj" -> (In: 4096, Out: 4096). Adapters are
/// checked against it when they are loaded.
/// </summary>
/// <param name="Conv1D">The adaptable modules are Hugging Face Conv1D layers (GPT-2), for which PEFT forces
/// <c>fan_in_fan_out</c> to true. lora_A [r, in] and lora_B [out, r] are stored as for a Linear either way: the flag
/// only says the base weight is [in, out] when a delta is merged into it.</param>
public sealed record AdapterTarget(string Architecture, int HiddenSize, int LayerCount, IReadOnlyDictionary<string, (long In, long Out)> Modules,
    bool Conv1D = false)
{
    /// <summary>The targets of a model of any supported family.</summary>
    public static AdapterTarget For(ICausalLMConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ModelFamilies.Get(config.ModelType).AdapterTarget(config);
    }

    /// <summary>
    /// GPT-J's LoRA targets, named as in its Hugging Face checkpoints: per layer attn.q_proj, k_proj, v_proj, out_proj
    /// (n_embd -> n_embd), mlp.fc_in (n_embd -> n_inner) and mlp.fc_out (n_inner -> n_embd). The output layer
    /// lm_head is not offered, as PEFT's "all-linear" leaves out a model's output layer.
    /// </summary>
    public static AdapterTarget ForGptJ(GptJConfig config) => PerLayer("gptj", config, config.EffectiveInnerSize, (e, inner) =>
        [("attn.q_proj", e, e), ("attn.k_proj", e, e), ("attn.v_proj", e, e), ("attn.out_proj", e, e), ("mlp.fc_in", e, inner), ("mlp.fc_out", inner, e)]);

    /// <summary>
    /// GPT-Neo's LoRA targets: per layer attn.attention.q_proj, k_proj, v_proj, out_proj (hidden -> hidden),
    /// mlp.c_fc (hidden -> intermediate) and mlp.c_proj (intermediate -> hidden); never the tied lm_head.
    /// </summary>
    public static AdapterTarget ForGptNeo(GptNeoConfig config) => PerLayer("gpt_neo", config, config.EffectiveInnerSize, (e, inner) =>
        [("attn.attention.q_proj", e, e), ("attn.attention.k_proj", e, e), ("attn.attention.v_proj", e, e), ("attn.attention.out_proj", e, e),
         ("mlp.c_fc", e, inner), ("mlp.c_proj", inner, e)]);

    /// <summary>
    /// GPT-2's LoRA targets, all Conv1D in Hugging Face: per layer attn.c_attn (n_embd -> 3 n_embd, q, k and v fused),
    /// attn.c_proj (n_embd -> n_embd), mlp.c_fc (n_embd -> n_inner), mlp.c_proj (n_inner -> n_embd); never the tied lm_head.
    /// </summary>
    public static AdapterTarget ForGpt2(Gpt2Config config) => PerLayer("gpt2", config, config.EffectiveInnerSize, (e, inner) =>
        [("attn.c_attn", e, 3 * e), ("attn.c_proj", e, e), ("mlp.c_fc", e, inner), ("mlp.c_proj", inner, e)]) with { Conv1D = true };

    /// <summary>Every layer's modules, "transformer.h.N." + name, with their (in, out) shapes given (hidden, inner).</summary>
    private static AdapterTarget PerLayer(string architecture, ICausalLMConfig config, long innerSize,
        Func<long, long, (string Module, long In, long Out)[]> layerModules)
    {
        ArgumentNullException.ThrowIfNull(config);
        var modules = new SortedDictionary<string, (long In, long Out)>(StringComparer.Ordinal);
        for (var layer = 0; layer < config.LayerCount; layer++)
        {
            foreach (var (module, inFeatures, outFeatures) in layerModules(config.HiddenSize, innerSize))
                modules[$"transformer.h.{layer}.{module}"] = (inFeatures, outFeatures);
        }
        return new AdapterTarget(architecture, config.HiddenSize, config.LayerCount, modules);
    }

    /// <summary>
    /// The target_modules PEFT picks when a config has none (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING);
    /// null for an architecture PEFT has no default for.
    /// </summary>
    public IReadOnlyList<string>? DefaultTargetModules => Architecture switch
    {
        "gptj" or "gpt_neo" => ["q_proj", "v_proj"],
        "gpt2" => ["c_attn"],
        _ => null,
    };
}
