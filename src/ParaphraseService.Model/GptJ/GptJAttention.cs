using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>Multi-head causal self-attention with partial interleaved rotary; scores computed in fp32.</summary>
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
        var (b, t) = (x.shape[0], x.shape[1]);
        var dtype = x.dtype;

        // Rotary on (B, T, H, D), then heads first: (B, H, T, D). Keys are kept in the model dtype so the cached and
        // the uncached paths attend to exactly the same keys.
        var q = _rotary.Apply(q_proj.forward(x).view(b, t, _heads, _headDim), input.Rotary).permute(0, 2, 1, 3);
        var k = _rotary.Apply(k_proj.forward(x).view(b, t, _heads, _headDim), input.Rotary).to(dtype).permute(0, 2, 1, 3);
        var v = v_proj.forward(x).view(b, t, _heads, _headDim).permute(0, 2, 1, 3);
        if (input.Cache is { } cache)
            (k, v) = cache.Append(k, v); // (B, H, S, D) with S = past + T

        // attn_weights = torch.matmul(query.to(float32), key.to(float32).transpose(-1, -2)) / scale_attn
        var scores = torch.matmul(q, k.to(ScalarType.Float32).transpose(-1, -2)) / _scale; // (B, H, T, S)
        // Masked entries get the most negative float, not -inf, so a row with nothing to attend to (a left pad)
        // stays finite instead of turning into NaN.
        scores = scores.masked_fill(input.Allowed.logical_not(), float.MinValue);
        var weights = scores.softmax(-1).to(v.dtype);
        var context = torch.matmul(weights, v)              // (B, H, T, D)
            .permute(0, 2, 1, 3).reshape(b, t, _heads * _headDim); // (B, T, E)
        return out_proj.forward(context).MoveToOuterDisposeScope();
    }
}
