using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// fbgemm's int8 GEMM, which TorchSharp does not wrap, reached through TorchScript compiled once at run time.
/// fbgemm quantizes the activations per call (asymmetric uint8 over the tensor's min/max) and multiplies them with a
/// prepacked int8 weight, reading one byte per weight: 4-6x faster than fp32 (FACTS.md). We quantize the activations
/// ourselves, row by row, and hand fbgemm codes it passes through unchanged (<see cref="IntegerProduct"/>).
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

    /// <summary>
    /// The largest activation code <see cref="IntegerProduct"/> accepts: 255, or 127 where pairs of products saturate
    /// (7 bits, PyTorch's reduce_range: 2·127·127 stays below 32767).
    /// </summary>
    public static int MaxCode => PairsSaturate ? 127 : 255;

    /// <summary>
    /// A buffer for <paramref name="rows"/> rows of codes plus the pin row <see cref="IntegerProduct"/> needs last: 0
    /// and 255, which fixes the op's quantization range to [0, 255], so its scale is exactly 1 and every code passes
    /// unchanged.
    /// </summary>
    public static Tensor CodesWithPinRow(int rows, int features)
    {
        var codes = empty([rows + 1, features]);
        codes[rows].zero_();
        codes[rows, 0] = 255f;
        return codes;
    }

    /// <summary>
    /// u · qᵀ, exact in int32, for activations already quantized: <paramref name="codes"/> (N + 1, in) fp32 holding
    /// integers in [0, <see cref="MaxCode"/>], its last row the pin of <see cref="CodesWithPinRow"/>. Returns (N + 1, out);
    /// the pin row's output is meaningless. Whatever the other rows hold, a row's product is the same.
    /// </summary>
    /// <param name="weightShape">Any int8 tensor of shape [out, in]: fbgemm reads only its sizes (an expanded scalar does).</param>
    /// <param name="colOffsets">int32 [out]: the sum of each weight row (zero point 0).</param>
    /// <param name="zeroBias">fp32 [out] zeros: the op requires a bias; ours is added after the scales.</param>
    public static Tensor IntegerProduct(Tensor codes, Tensor weightShape, Tensor packed, Tensor colOffsets, Tensor zeroBias) =>
        Invoke(codes, weightShape, packed, colOffsets, zeroBias);

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
