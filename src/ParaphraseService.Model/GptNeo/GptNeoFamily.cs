using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.GptNeo;

/// <summary>GPT-Neo as the model_type registry sees it: its config reader, its model, its LoRA targets, its files.</summary>
public static class GptNeoFamily
{
    public static ModelFamily Family { get; } = ModelFamily.Of<GptNeoConfig>("gpt_neo", "GPT-Neo",
        path => ConfigFile.Load<GptNeoConfig>(path, "GPT-Neo"),
        (config, layers) => new GptNeoForCausalLM(config, layers),
        LoraTargets,
        new CheckpointConventions(TiedHeadKey: "lm_head.weight"));

    /// <summary>
    /// GPT-Neo's LoRA targets: per layer attn.attention.q_proj, k_proj, v_proj, out_proj (hidden -> hidden),
    /// mlp.c_fc (hidden -> intermediate) and mlp.c_proj (intermediate -> hidden); never the tied lm_head. PEFT's default
    /// target_modules for gpt_neo: q_proj and v_proj.
    /// </summary>
    public static AdapterTarget LoraTargets(GptNeoConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = config.HiddenSize, inner = config.EffectiveInnerSize;
        return AdapterTarget.PerLayer("gpt_neo", config.HiddenSize, config.LayerCount,
            [("attn.attention.q_proj", e, e), ("attn.attention.k_proj", e, e), ("attn.attention.v_proj", e, e), ("attn.attention.out_proj", e, e),
             ("mlp.c_fc", e, inner), ("mlp.c_proj", inner, e)])
            with { DefaultTargetModules = ["q_proj", "v_proj"] };
    }
}
