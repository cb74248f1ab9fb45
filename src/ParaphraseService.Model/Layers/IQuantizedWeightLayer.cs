using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// A layer that keeps its <c>weight</c> in its own format. The loader hands it the checkpoint's tensor, full precision
/// (quantized on arrival) or already quantized, instead of setting a Parameter; everything else it has (a bias) is an
/// ordinary Parameter.
/// </summary>
public interface IQuantizedWeightLayer
{
    /// <summary>The weight's shape in a full-precision checkpoint, e.g. [out, in].</summary>
    long[] WeightShape { get; }

    /// <summary>Bytes the stored weight occupies (int8 values plus scales, or a packed form).</summary>
    long WeightBytes { get; }

    /// <summary>Quantizes a full-precision weight (any float dtype, any device) and keeps the result on <paramref name="device"/>.</summary>
    void LoadWeight(Tensor weight, Device device);

    /// <summary>Keeps an already quantized weight: int8 values [rows, cols] and fp32 row scales [rows].</summary>
    void LoadQuantizedWeight(Tensor q, Tensor scale, Device device);
}
