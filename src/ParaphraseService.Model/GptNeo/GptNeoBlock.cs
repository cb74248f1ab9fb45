using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>One decoder block with two LayerNorms and a sequential residual: h = x + attn(ln_1(x)); h + mlp(ln_2(h)).</summary>
public sealed class GptNeoBlock : nn.Module<BlockInput, Tensor>
{
    private nn.Module<Tensor, Tensor> ln_1;
    private GptNeoAttention attn;
    private nn.Module<Tensor, Tensor> ln_2;
    private GeluMlp mlp;

    public GptNeoBlock(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoBlock))
    {
        ln_1 = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        attn = new GptNeoAttention(config, layers);
        ln_2 = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        mlp = new GeluMlp(config.HiddenSize, config.EffectiveInnerSize, layers);
        RegisterComponents();
    }

    public override Tensor forward(BlockInput input)
    {
        using var scope = NewDisposeScope();
        // hidden_states = attn_output + residual
        var h = attn.call(input with { Hidden = ln_1.call(input.Hidden) }) + input.Hidden;
        // hidden_states = residual + feed_forward_hidden_states
        return (h + mlp.call(ln_2.call(h))).MoveToOuterDisposeScope();
    }
}
