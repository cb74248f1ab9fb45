using ParaphraseService.Model.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// Creates the layers a model is built from, in one dtype, on one device, stored in full precision or 8 bits, so the
/// model code says what it computes and not how its weights are kept.
/// </summary>
/// <param name="Lora">When set, every Linear a LoRA adapter may target is wrapped in a <see cref="LoraLinear"/> routed by it.</param>
public sealed record LayerFactory(
    ScalarType Dtype, Device Device, Quantization Quantization = Quantization.None, Int8Options? Int8 = null, LoraRouting? Lora = null)
{
    /// <param name="adaptable">Whether LoRA adapters may target this layer (the attention and MLP projections).</param>
    public nn.Module<Tensor, Tensor> Linear(long inFeatures, long outFeatures, bool hasBias, bool adaptable = false)
    {
        nn.Module<Tensor, Tensor> layer = Quantization switch
        {
            Quantization.Int8 => new Int8Linear(inFeatures, outFeatures, hasBias, Dtype, Int8 ?? Int8Options.Default),
            _ => new FloatLinear(inFeatures, outFeatures, hasBias, Device, Dtype),
        };
        return adaptable && Lora is not null ? new LoraLinear(layer, inFeatures, outFeatures, Lora) : layer;
    }

    public nn.Module<Tensor, Tensor> Embedding(long count, long dim) => Quantization switch
    {
        Quantization.Int8 => new Int8Embedding(count, dim, Dtype),
        _ => new TokenEmbedding(count, dim, Dtype, Device),
    };

    /// <summary>Learned position vectors: always full precision (a small table, and not among the weights int8 targets).</summary>
    public nn.Module<Tensor, Tensor> PositionEmbedding(long count, long dim) => new TokenEmbedding(count, dim, Dtype, Device);

    /// <summary>An output layer that shares <paramref name="embedding"/>'s weight (a tied lm_head); see <see cref="TiedLmHead"/>.</summary>
    public TiedLmHead TiedHead(nn.Module<Tensor, Tensor> embedding) => new(embedding, Dtype, Int8 ?? Int8Options.Default);

    public nn.Module<Tensor, Tensor> LayerNorm(long dim, double eps) => new FloatLayerNorm(dim, eps, Device, Dtype);
}
