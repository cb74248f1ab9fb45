using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.GptJ;

/// <summary>GPT-J as the model_type registry sees it: its config reader, its model, its LoRA targets, its files.</summary>
public static class GptJFamily
{
    public static ModelFamily Family { get; } = ModelFamily.Of<GptJConfig>("gptj", "GPT-J",
        GptJConfig.Load,
        (config, layers) => new GptJForCausalLM(config, layers),
        LoraTargets,
        CheckpointConventions.Identity);

    /// <summary>
    /// GPT-J's LoRA targets, named as in its Hugging Face checkpoints: per layer attn.q_proj, k_proj, v_proj, out_proj
    /// (n_embd -> n_embd), mlp.fc_in (n_embd -> n_inner) and mlp.fc_out (n_inner -> n_embd). The output layer
    /// lm_head is not offered, as PEFT's "all-linear" leaves out a model's output layer. PEFT's default target_modules
    /// for gptj: q_proj and v_proj.
    /// </summary>
    public static AdapterTarget LoraTargets(GptJConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = config.HiddenSize, inner = config.EffectiveInnerSize;
        return AdapterTarget.PerLayer("gptj", config.HiddenSize, config.LayerCount,
            [("attn.q_proj", e, e), ("attn.k_proj", e, e), ("attn.v_proj", e, e), ("attn.out_proj", e, e), ("mlp.fc_in", e, inner), ("mlp.fc_out", inner, e)])
            with { DefaultTargetModules = ["q_proj", "v_proj"] };
    }
}
