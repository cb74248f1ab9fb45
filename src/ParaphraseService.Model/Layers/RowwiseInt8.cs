using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// Symmetric per-row 8-bit quantization: row r is stored as round(w[r] / s[r]) in [-127, 127] with
/// s[r] = max|w[r]| / 127, so each row keeps its own range and w ≈ s[:, None] * q.
/// </summary>
public static class RowwiseInt8
{
    // Rows converted at a time, so a 50400 x 4096 fp16 table never needs a full fp32 copy (826 MB) next to it.
    private const long RowsPerChunk = 2048;

    /// <summary>Quantizes a 2-D floating-point weight. Returns (q int8 [rows, cols], scale fp32 [rows]) on <paramref name="device"/>.</summary>
    public static (Tensor Q, Tensor Scale) Quantize(Tensor weight, Device device)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"Row-wise quantization needs a 2-D weight, got [{string.Join(", ", weight.shape)}].");
        var rows = weight.shape[0];
        var q = empty(weight.shape, ScalarType.Int8, device);
        var scale = empty(rows, ScalarType.Float32, device);
        for (long start = 0; start < rows; start += RowsPerChunk)
        {
            using var scope = NewDisposeScope();
            var count = Math.Min(RowsPerChunk, rows - start);
            var w = weight.narrow(0, start, count).to(ScalarType.Float32, device);
            // An all-zero row gets scale 1 instead of 0, so dequantizing never divides by or multiplies with nothing.
            var s = w.abs().amax([1]) / 127f;
            s = s.masked_fill(s.eq(0), 1f);
            q.narrow(0, start, count).copy_((w / s.unsqueeze(1)).round_().clamp_(-127, 127).to(ScalarType.Int8));
            scale.narrow(0, start, count).copy_(s);
        }
        return (q, scale);
    }

    /// <summary>s[:, None] * q in <paramref name="dtype"/>.</summary>
    public static Tensor Dequantize(Tensor q, Tensor scale, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        return (q.to(dtype) * scale.to(dtype).unsqueeze(1)).MoveToOuterDisposeScope();
    }
}
