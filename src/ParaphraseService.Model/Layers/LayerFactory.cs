using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// Creates the layers a model is built from, in one dtype, on one device, stored in full precision or 8 bits, so the
/// model code says what it computes and not how its weights are kept.
/// </summary>
public sealed record LayerFactory(ScalarType Dtype, Device Device, Quantization Quantization = Quantization.None, Int8Options? Int8 = null)
{
    public nn.Module<Tensor, Tensor> Linear(long inFeatures, long outFeatures, bool hasBias) => Quantization switch
    {
        Quantization.Int8 => new Int8Linear(inFeatures, outFeatures, hasBias, Dtype, Int8 ?? Int8Options.Default),
        _ => nn.Linear(inFeatures, outFeatures, hasBias, Device, Dtype),
    };

    public nn.Module<Tensor, Tensor> Embedding(long count, long dim) => Quantization switch
    {
        Quantization.Int8 => new Int8Embedding(count, dim, Dtype),
        _ => new TokenEmbedding(count, dim, Dtype, Device),
    };

    public nn.Module<Tensor, Tensor> LayerNorm(long dim, double eps) => nn.LayerNorm(dim, eps, device: Device, dtype: Dtype);
}
