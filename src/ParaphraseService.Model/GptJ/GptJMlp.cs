using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>fc_in → gelu_new → fc_out.</summary>
public sealed class GptJMlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> fc_in;
    private nn.Module<Tensor, Tensor> fc_out;
    private NewGelu act = new();

    public GptJMlp(GptJConfig config, LayerFactory layers) : base(nameof(GptJMlp))
    {
        fc_in = layers.Linear(config.HiddenSize, config.EffectiveInnerSize, hasBias: true, adaptable: true);
        fc_out = layers.Linear(config.EffectiveInnerSize, config.HiddenSize, hasBias: true, adaptable: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = act.call(fc_in.call(x));
        return fc_out.call(h).MoveToOuterDisposeScope();
    }
}
