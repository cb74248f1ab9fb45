using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>One decoder block with GPT-J's parallel residual: h = x + attn(ln_1(x)) + mlp(ln_1(x)).</summary>
public sealed class GptJBlock : nn.Module<AttentionInput, Tensor>
{
    private nn.Module<Tensor, Tensor> ln_1;
    private GptJAttention attn;
    private GptJMlp mlp;

    public GptJBlock(GptJConfig config, RotaryEmbedding rotary, LayerFactory layers) : base(nameof(GptJBlock))
    {
        ln_1 = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        attn = new GptJAttention(config, rotary, layers);
        mlp = new GptJMlp(config, layers);
        RegisterComponents();
    }

    public override Tensor forward(AttentionInput input)
    {
        using var scope = NewDisposeScope();
        var normed = ln_1.call(input.Hidden);
        // hidden_states = attn_output + feed_forward_hidden_states + residual
        var h = attn.call(input with { Hidden = normed }) + mlp.call(normed) + input.Hidden;
        return h.MoveToOuterDisposeScope();
    }
}
