using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>GPT-Neo with its lm_head tied to the token embedding; returns fp32 logits (B, T, V), or (B, 1, V) for the last token.</summary>
public sealed class GptNeoForCausalLM : CausalLM
{
    private GptNeoModel transformer;
    private TiedLmHead lm_head;

    /// <param name="device">Where parameters are created; <c>meta</c> builds the shapes without allocating memory.</param>
    public GptNeoForCausalLM(GptNeoConfig config, ScalarType dtype, Device device) : this(config, new LayerFactory(dtype, device))
    {
    }

    /// <param name="layers">Dtype, device and weight storage (full precision or int8) of every layer.</param>
    public GptNeoForCausalLM(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoForCausalLM), GptNeoFamily.Family, config, layers)
    {
        Config = config;
        transformer = new GptNeoModel(config, layers);
        lm_head = layers.TiedHead(transformer.TokenEmbedding);
        RegisterComponents();
    }

    public new GptNeoConfig Config { get; }

    protected override Tensor Trunk(CausalLMInput input) => transformer.call(input);

    protected override Tensor Head(Tensor hidden) => lm_head.call(hidden);
}
