using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>
/// Multi-head causal self-attention with partial interleaved rotary; scores computed in fp32 and divided by sqrt(head_dim)
/// (the arithmetic after the projections is the one all families share, <see cref="MultiHeadAttention"/>).
/// </summary>
public sealed class GptJAttention : nn.Module<AttentionInput, Tensor>
{
    private nn.Module<Tensor, Tensor> q_proj;
    private nn.Module<Tensor, Tensor> k_proj;
    private nn.Module<Tensor, Tensor> v_proj;
    private nn.Module<Tensor, Tensor> out_proj;
    private readonly RotaryEmbedding _rotary;
    private readonly int _heads;
    private readonly int _headDim;
    private readonly float _scale;

    public GptJAttention(GptJConfig config, RotaryEmbedding rotary, LayerFactory layers) : base(nameof(GptJAttention))
    {
        var e = config.HiddenSize;
        q_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        k_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        v_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        out_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        _rotary = rotary;
        _heads = config.HeadCount;
        _headDim = config.HeadDim;
        _scale = MathF.Sqrt(_headDim);
        RegisterComponents();
    }

    public override Tensor forward(AttentionInput input)
    {
        using var scope = NewDisposeScope();
        var x = input.Hidden;
        var (b, t) = (x.size(0), x.size(1));
        var dtype = x.dtype;

        // Rotary on (B, T, H, D), then heads first: (B, H, T, D). q stays in fp32 from the rotary; keys go back to the
        // model dtype so the cached and the uncached paths attend to exactly the same keys. The projections' outputs are
        // this forward's own, so they are rotated in place.
        var q = _rotary.Apply(q_proj.call(x).view(b, t, _heads, _headDim), input.Rotary, overwrite: true).permute(0, 2, 1, 3);
        var k = _rotary.Apply(k_proj.call(x).view(b, t, _heads, _headDim), input.Rotary, overwrite: true).to(dtype).permute(0, 2, 1, 3);
        var v = MultiHeadAttention.SplitHeads(v_proj.call(x), _heads, _headDim);
        // attn_weights = torch.matmul(query.to(float32), key.to(float32).transpose(-1, -2)) / scale_attn
        var context = MultiHeadAttention.Attend(q, k, v, input.Allowed, input.Cache, _scale); // (B, T, E)
        return out_proj.call(context).MoveToOuterDisposeScope();
    }
}
