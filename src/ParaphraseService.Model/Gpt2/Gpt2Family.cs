using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Gpt2;

/// <summary>GPT-2 as the model_type registry sees it: its config reader, its model, its LoRA targets, its files.</summary>
public static class Gpt2Family
{
    public static ModelFamily Family { get; } = ModelFamily.Of<Gpt2Config>("gpt2", "GPT-2",
        path => ConfigFile.Load<Gpt2Config>(path, "GPT-2"),
        (config, layers) => new Gpt2ForCausalLM(config, layers),
        LoraTargets,
        new CheckpointConventions("transformer.", Gpt2ForCausalLM.IsConv1DWeight, "lm_head.weight"));

    /// <summary>
    /// GPT-2's LoRA targets, all Conv1D in Hugging Face: per layer attn.c_attn (n_embd -> 3 n_embd, q, k and v fused),
    /// attn.c_proj (n_embd -> n_embd), mlp.c_fc (n_embd -> n_inner), mlp.c_proj (n_inner -> n_embd); never the tied
    /// lm_head. PEFT's default target_modules for gpt2: c_attn.
    /// </summary>
    public static AdapterTarget LoraTargets(Gpt2Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = config.HiddenSize, inner = config.EffectiveInnerSize;
        return AdapterTarget.PerLayer("gpt2", config.HiddenSize, config.LayerCount,
            [("attn.c_attn", e, 3 * e), ("attn.c_proj", e, e), ("mlp.c_fc", e, inner), ("mlp.c_proj", inner, e)])
            with { Conv1D = true, DefaultTargetModules = ["c_attn"] };
    }
}
