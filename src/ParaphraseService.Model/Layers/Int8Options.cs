namespace ParaphraseService.Model.Layers;

/// <param name="Kernel">Which int8 compute path to use.</param>
/// <param name="OutlierFactor">
/// CPU kernels: each row's activation range is clipped at this multiple of the row's mean magnitude, and the values
/// beyond it are multiplied exactly, in fp32 against the weight's int8 values. A few large values would otherwise
/// stretch the range and round every ordinary value of the row coarsely (LLM.int8()'s outlier features of large models
/// run 20-100x the rest). Null: the kernel's own default, <see cref="Avx2Default"/> for the AVX2 kernel's 8-bit codes
/// (a trained 4-layer model's top-1 agreement with fp32: 97.9% without, 98.4% at 6, 98.7% at 3, each outlier costing a
/// multiply-add per output) and <see cref="FbgemmDefault"/> for fbgemm's 7-bit codes (97.0% without, 98.2% at 3; it keeps
/// a transposed copy of the weight for them, one more byte per weight). Infinity turns the pass off.
/// </param>
/// <param name="KeepWeightForTraining">
/// Keep the int8 matrix beside fbgemm's packed copy (one more byte per weight), so gradients can flow back through
/// the layer to LoRA adapters of earlier layers. fbgemm's packed form cannot be read back, and its op has no backward.
/// The dequantize and AVX2 kernels keep the matrix anyway.
/// </param>
public sealed record Int8Options(Int8Kernel Kernel = Int8Kernel.Auto, float? OutlierFactor = null, bool KeepWeightForTraining = false)
{
    public const float Avx2Default = 6f;
    public const float FbgemmDefault = 3f;

    public static Int8Options Default { get; } = new();

    /// <summary>A factor as settings give it: null for the kernel's default, 0 for off (infinity).</summary>
    public static float? FromSetting(double? factor) => factor switch
    {
        null => null,
        0 => float.PositiveInfinity,
        var f => (float)f,
    };

    /// <summary>The factor <paramref name="kernel"/> runs with: the one set, or that kernel's default.</summary>
    public float OutlierFactorFor(Int8Kernel kernel) => OutlierFactor ?? (kernel == Int8Kernel.Fbgemm ? FbgemmDefault : Avx2Default);
}
