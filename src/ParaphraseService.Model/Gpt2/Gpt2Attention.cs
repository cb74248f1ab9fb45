using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Gpt2;

/// <summary>
/// GPT-2's causal self-attention: one fused projection c_attn (E → 3E, split into q, k, v) and c_proj, both with bias.
/// Hugging Face keeps them as Conv1D (weight [in, out]); here they are Linear layers (weight [out, in]) and the loader
/// transposes the checkpoint's tensors, so int8 and LoRA treat them like every other Linear. Scores are computed in
/// fp32 (Hugging Face uses the model dtype unless <c>reorder_and_upcast_attn</c>; identical in fp32).
/// </summary>
public sealed class Gpt2Attention : nn.Module<BlockInput, Tensor>
{
    private nn.Module<Tensor, Tensor> c_attn;
    private nn.Module<Tensor, Tensor> c_proj;
    private readonly int _heads;
    private readonly int _headDim;
    private readonly float[] _divisors;

    public Gpt2Attention(Gpt2Config config, int layerIndex, LayerFactory layers) : base(nameof(Gpt2Attention))
    {
        var e = config.HiddenSize;
        c_attn = layers.Linear(e, 3 * e, hasBias: true, adaptable: true);
        c_proj = layers.Linear(e, e, hasBias: true, adaptable: true);
        _heads = config.HeadCount;
        _headDim = config.HeadDim;
        // attn_weights / torch.full([], value.size(-1) ** 0.5); then, if scale_attn_by_inverse_layer_idx, / float(layer_idx + 1)
        var divisors = new List<float>();
        if (config.ScaleAttnWeights) divisors.Add((float)Math.Sqrt(_headDim));
        if (config.ScaleAttnByInverseLayerIdx) divisors.Add(layerIndex + 1);
        _divisors = [.. divisors];
        RegisterComponents();
    }

    public override Tensor forward(BlockInput input)
    {
        using var scope = NewDisposeScope();
        var e = _heads * _headDim;
        // query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        var qkv = c_attn.call(input.Hidden).split(e, 2);
        var q = MultiHeadAttention.SplitHeads(qkv[0], _heads, _headDim); // (B, H, T, D)
        var k = MultiHeadAttention.SplitHeads(qkv[1], _heads, _headDim);
        var v = MultiHeadAttention.SplitHeads(qkv[2], _heads, _headDim);
        var context = MultiHeadAttention.Attend(q, k, v, input.Allowed, input.Cache, _divisors); // (B, T, E)
        return c_proj.call(context).MoveToOuterDisposeScope();
    }
}
