namespace ParaphraseService.Model.Layers;

/// <param name="Kernel">Which int8 compute path to use.</param>
/// <param name="OutlierFactor">
/// fbgemm kernel: each row's 8-bit (7-bit on CPUs without VNNI) activation range is clipped at this multiple of the
/// row's mean magnitude, and the values beyond it are multiplied exactly, in fp32 against the weight's int8 column. A few large
/// values would otherwise stretch the range and round every ordinary value of the row coarsely (LLM.int8()'s outlier
/// features of large models run 20-100x the rest; a trained 4-layer model's top-1 agreement with fp32 went from 97.0%
/// to 98.2% with 7-bit codes). Costs a transposed copy of the weight (one more byte per weight) and, per outlier, one
/// pass over a column. Infinity turns it off and keeps no copy.
/// </param>
/// <param name="KeepWeightForTraining">
/// Keep the int8 matrix beside fbgemm's packed copy (one more byte per weight), so gradients can flow back through
/// the layer to LoRA adapters of earlier layers. fbgemm's packed form cannot be read back, and its op has no backward.
/// The dequantize kernel keeps the matrix anyway.
/// </param>
public sealed record Int8Options(Int8Kernel Kernel = Int8Kernel.Auto, float OutlierFactor = 3.0f, bool KeepWeightForTraining = false)
{
    public static Int8Options Default { get; } = new();
}
