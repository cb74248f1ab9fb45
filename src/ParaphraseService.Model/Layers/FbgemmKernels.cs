using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// fbgemm's int8 GEMM, which TorchSharp does not wrap, reached through TorchScript compiled once at run time.
/// fbgemm quantizes the activations per call (asymmetric uint8 over the tensor's min/max) and multiplies them with a
/// prepacked int8 weight, reading one byte per weight: 4-6x faster than fp32 on an AVX-512 CPU (FACTS.md).
/// </summary>
internal static class FbgemmKernels
{
    private static readonly Lazy<jit.CompilationUnit> s_unit = new(() => jit.compile("""
        def pack(q: Tensor) -> Tensor:
            return torch.fbgemm_pack_quantized_matrix(q)

        def linear(x: Tensor, weight_shape: Tensor, packed: Tensor, col_offsets: Tensor, zero_bias: Tensor) -> Tensor:
            return torch.fbgemm_linear_int8_weight_fp32_activation(x, weight_shape, packed, col_offsets, 1.0, 0, zero_bias)

        """)); // TorchScript wants the source to end with a newline

    /// <summary>Packs an int8 [out, in] weight into fbgemm's tiled layout (an opaque byte tensor of about the same size).</summary>
    public static Tensor Pack(Tensor q) => (Tensor)s_unit.Value.invoke("pack", q);

    /// <summary>x (…, in) fp32 times the packed int8 weight with unit scale: (…, out) fp32 equal to x · qᵀ up to activation rounding.</summary>
    /// <param name="weightShape">Any int8 tensor of shape [out, in]: fbgemm reads only its sizes (an expanded scalar does).</param>
    /// <param name="colOffsets">int32 [out]: the sum of each weight row (zero point 0).</param>
    /// <param name="zeroBias">fp32 [out] zeros: the op requires a bias; ours is added after the row scales.</param>
    public static Tensor Linear(Tensor x, Tensor weightShape, Tensor packed, Tensor colOffsets, Tensor zeroBias) =>
        (Tensor)s_unit.Value.invoke("linear", x, weightShape, packed, colOffsets, zeroBias);
}
