using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// fbgemm's int8 GEMM, which TorchSharp does not wrap, reached through TorchScript compiled once at run time.
/// fbgemm quantizes the activations per call (asymmetric uint8 over the tensor's min/max) and multiplies them with a
/// prepacked int8 weight, reading one byte per weight: 4-6x faster than fp32 (FACTS.md).
/// </summary>
internal static class FbgemmKernels
{
    private static readonly Lazy<jit.CompilationUnit> s_unit = new(() => jit.compile("""
        def pack(q: Tensor) -> Tensor:
            return torch.fbgemm_pack_quantized_matrix(q)

        def linear(x: Tensor, weight_shape: Tensor, packed: Tensor, col_offsets: Tensor, zero_bias: Tensor) -> Tensor:
            return torch.fbgemm_linear_int8_weight_fp32_activation(x, weight_shape, packed, col_offsets, 1.0, 0, zero_bias)

        """)); // TorchScript wants the source to end with a newline

    private static readonly Lazy<bool> s_pairsSaturate = new(ProbePairSaturation);

    /// <summary>
    /// Whether this CPU's kernel adds pairs of uint8·int8 products in saturating 16-bit lanes (vpmaddubsw: AVX2, and
    /// AVX-512 without VNNI), where two large products (2·255·127 &gt; 32767) are clipped. VNNI CPUs add in 32 bits.
    /// Measured once with a product built to overflow, rather than guessed from CPU flags.
    /// </summary>
    public static bool PairsSaturate => s_pairsSaturate.Value;

    /// <summary>Packs an int8 [out, in] weight into fbgemm's tiled layout (an opaque byte tensor of about the same size).</summary>
    public static Tensor Pack(Tensor q) => (Tensor)s_unit.Value.invoke("pack", q);

    /// <summary>x (…, in) fp32 times the packed int8 weight with unit scale: (…, out) fp32 equal to x · qᵀ up to activation rounding.</summary>
    /// <param name="weightShape">Any int8 tensor of shape [out, in]: fbgemm reads only its sizes (an expanded scalar does).</param>
    /// <param name="colOffsets">int32 [out]: the sum of each weight row (zero point 0).</param>
    /// <param name="zeroBias">fp32 [out] zeros: the op requires a bias; ours is added after the row scales.</param>
    public static Tensor Linear(Tensor x, Tensor weightShape, Tensor packed, Tensor colOffsets, Tensor zeroBias)
    {
        if (!PairsSaturate)
            return Invoke(x, weightShape, packed, colOffsets, zeroBias);
        using var scope = NewDisposeScope();
        // PyTorch's reduce_range: activations in 7 bits on these CPUs, so no pair of products can overflow. The op
        // takes its range from the data, so one extra row holding 2·max − min doubles the range and the real rows
        // quantize to [0, 128]; that row's output is dropped.
        var rows = x.reshape(-1, x.shape[^1]);
        var (min, max) = aminmax(rows);
        var low = min.clamp(max: 0);
        var high = max.clamp(min: 0);
        var extra = zeros([1, rows.shape[1]], rows.dtype, rows.device);
        extra[0, 0] = (2 * high - low).clamp(max: float.MaxValue);
        var product = Invoke(cat([rows, extra], 0), weightShape, packed, colOffsets, zeroBias).narrow(0, 0, rows.shape[0]);
        long[] shape = [.. x.shape[..^1], product.shape[1]];
        return product.reshape(shape).MoveToOuterDisposeScope();
    }

    private static Tensor Invoke(Tensor x, Tensor weightShape, Tensor packed, Tensor colOffsets, Tensor zeroBias) =>
        (Tensor)s_unit.Value.invoke("linear", x, weightShape, packed, colOffsets, zeroBias);

    private static bool ProbePairSaturation()
    {
        using var scope = NewDisposeScope();
        // Activations 0 and 1 quantize to uint8 0 and 255; every weight is 127: exactly 64 · 127 per output unless
        // the kernel clips pair sums at 32767.
        const int features = 64, outputs = 8;
        var q = full([outputs, features], 127, ScalarType.Int8);
        var x = ones([1, features]);
        x[0, 0] = 0;
        var product = Invoke(x, q, Pack(q), q.sum([1], type: ScalarType.Int32), zeros(outputs));
        var exact = (features - 1) * 127f;
        return (product - exact).abs().max().item<float>() > 0.01f * exact;
    }
}
