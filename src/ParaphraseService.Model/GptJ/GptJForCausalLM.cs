using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>GPT-J with its untied language-model head; returns fp32 logits (B, T, V), or (B, 1, V) for the last token.</summary>
public sealed class GptJForCausalLM : nn.Module<CausalLMInput, Tensor>
{
    private GptJModel transformer;
    private nn.Module<Tensor, Tensor> lm_head;

    public GptJConfig Config { get; }

    /// <summary>Routes adapters to rows when the model was built with LoRA support (<see cref="LayerFactory.Lora"/>), else null.</summary>
    public LoraRouting? Lora { get; }

    /// <param name="device">Where parameters are created; <c>meta</c> builds the shapes without allocating memory.</param>
    public GptJForCausalLM(GptJConfig config, ScalarType dtype, Device device) : this(config, new LayerFactory(dtype, device))
    {
    }

    /// <param name="layers">Dtype, device and weight storage (full precision or int8) of every layer.</param>
    public GptJForCausalLM(GptJConfig config, LayerFactory layers) : base(nameof(GptJForCausalLM))
    {
        config.Validate();
        Config = config;
        Lora = layers.Lora;
        transformer = new GptJModel(config, layers);
        lm_head = layers.Linear(config.HiddenSize, config.VocabSize, hasBias: true);
        RegisterComponents();
    }

    /// <summary>Recompute each block's activations in the backward pass instead of keeping them (training only).</summary>
    public bool GradientCheckpointing
    {
        get => transformer.GradientCheckpointing;
        set => transformer.GradientCheckpointing = value;
    }

    public override Tensor forward(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        if (input.Adapters is not null && Lora is null)
            throw new InvalidOperationException("This model was built without LoRA support; build it with LayerFactory.Lora to use adapters.");
        using var routing = Lora?.Use(input.Adapters);
        var hidden = transformer.forward(input);
        if (input.LastTokenOnly)
            hidden = hidden[.., TensorIndex.Slice(-1)];
        // lm_logits = self.lm_head(hidden_states).to(torch.float32)
        return lm_head.forward(hidden).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
