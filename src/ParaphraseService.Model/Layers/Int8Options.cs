namespace ParaphraseService.Model.Layers;

/// <param name="Kernel">Which int8 compute path to use.</param>
/// <param name="OutlierThreshold">
/// fbgemm kernel: input values whose magnitude exceeds this are multiplied in a separate pass with their own per-row
/// activation range (LLM.int8()'s finding: a few features of large models run 20-100x larger than the rest, and one
/// shared 8-bit range would flatten all the others to zero). Decided value by value, so rows stay independent.
/// 6.0 is LLM.int8()'s threshold; infinity turns it off.
/// </param>
/// <param name="KeepWeightForTraining">
/// Keep the int8 matrix beside fbgemm's packed copy (one more byte per weight), so gradients can flow back through
/// the layer to LoRA adapters of earlier layers. fbgemm's packed form cannot be read back, and its op has no backward.
/// The dequantize kernel keeps the matrix anyway.
/// </param>
public sealed record Int8Options(Int8Kernel Kernel = Int8Kernel.Auto, float OutlierThreshold = 6.0f, bool KeepWeightForTraining = false)
{
    public static Int8Options Default { get; } = new();
}
