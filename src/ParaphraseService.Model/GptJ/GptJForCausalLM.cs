using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>GPT-J with its untied language-model head; returns fp32 logits (B, T, V), or (B, 1, V) for the last token.</summary>
public sealed class GptJForCausalLM : CausalLM
{
    private GptJModel transformer;
    private nn.Module<Tensor, Tensor> lm_head;

    public new GptJConfig Config { get; }

    /// <param name="device">Where parameters are created; <c>meta</c> builds the shapes without allocating memory.</param>
    public GptJForCausalLM(GptJConfig config, ScalarType dtype, Device device) : this(config, new LayerFactory(dtype, device))
    {
    }

    /// <param name="layers">Dtype, device and weight storage (full precision or int8) of every layer.</param>
    public GptJForCausalLM(GptJConfig config, LayerFactory layers) : base(nameof(GptJForCausalLM), GptJFamily.Family, config, layers)
    {
        Config = config;
        transformer = new GptJModel(config, layers);
        lm_head = layers.Linear(config.HiddenSize, config.VocabSize, hasBias: true);
        RegisterComponents();
    }

    protected override Tensor Trunk(CausalLMInput input) => transformer.call(input);

    protected override Tensor Head(Tensor hidden) => lm_head.call(hidden);
}
