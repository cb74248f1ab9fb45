using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>
/// The attention arithmetic every family shares once q, k and v are projected (and, for GPT-J, rotated): one copy, so a
/// fix to masking or precision reaches GPT-J, GPT-Neo and GPT-2 alike.
/// </summary>
internal static class MultiHeadAttention
{
    /// <summary>(B, T, E) → (B, H, T, D).</summary>
    public static Tensor SplitHeads(Tensor x, int heads, int headDim) =>
        // tensor.view(new_shape).permute(0, 2, 1, 3)  # (batch, head, seq_length, head_features)
        x.view(x.size(0), x.size(1), heads, headDim).permute(0, 2, 1, 3);

    /// <summary>
    /// Softmax attention of q over k and v, each (B, H, ·, D), scores in fp32 and divided by each of
    /// <paramref name="divisors"/> in turn (sqrt(head_dim) for GPT-J and GPT-2, none for GPT-Neo). Appends k and v to the
    /// cache first (GPT-J's rotated keys arrive in the model dtype), which stores them in its own dtype. Returns (B, T, E).
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor allowed, ILayerKvCache? cache, params float[] divisors)
    {
        using var scope = NewDisposeScope();
        var (b, heads, t, headDim) = (q.size(0), q.size(1), q.size(2), q.size(3));
        var (keyType, valueType) = (k.dtype, v.dtype);
        if (cache is not null)
            (k, v) = cache.Append(k, v); // (B, H, S, D) with S = past + T
        // fp32 keys and values, or fp32 ones the cache keeps in bfloat16 (a bfloat16 model attends as its reference does, below)
        if (keyType == ScalarType.Float32 && valueType == ScalarType.Float32 && CpuAttention.Applies(q, k, v))
            return CpuAttention.Attend(q, k, v, allowed, divisors).MoveToOuterDisposeScope();
        // What a cache of a narrower type gives back (ModelLoadOptions.KvCache) is widened to the dtype the fresh keys and
        // values came in, and attended to as they would have been.
        (k, v) = (k.to(keyType), v.to(valueType));
        // attn_weights = torch.matmul(query.to(torch.float32), key.to(torch.float32).transpose(-1, -2))
        var scores = torch.matmul(q.to(ScalarType.Float32), k.to(ScalarType.Float32).transpose(-1, -2)); // (B, H, T, S)
        foreach (var divisor in divisors)
            scores = scores / divisor;
        // attn_weights = torch.where(causal_mask, attn_weights, torch.finfo(attn_weights.dtype).min), then the padding
        // mask: masked entries get the most negative float, not -inf, so a row with nothing to attend to (a left pad)
        // stays finite instead of turning into NaN.
        scores = scores.masked_fill(allowed.logical_not(), float.MinValue);
        var weights = scores.softmax(-1).to(v.dtype);
        return torch.matmul(weights, v)                       // (B, H, T, D)
            .permute(0, 2, 1, 3).reshape(b, t, heads * headDim) // (B, T, E)
            .MoveToOuterDisposeScope();
    }
}
