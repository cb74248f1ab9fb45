using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>fc_in → gelu_new → fc_out.</summary>
public sealed class GptJMlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> fc_in;
    private nn.Module<Tensor, Tensor> fc_out;

    public GptJMlp(GptJConfig config, LayerFactory layers) : base(nameof(GptJMlp))
    {
        fc_in = layers.Linear(config.HiddenSize, config.EffectiveInnerSize, hasBias: true, adaptable: true);
        fc_out = layers.Linear(config.EffectiveInnerSize, config.HiddenSize, hasBias: true, adaptable: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // gelu_new: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), PyTorch's tanh-approximate GELU
        var h = nn.functional.gelu(fc_in.call(x), TorchSharp.Modules.GELU.Approximate.tanh);
        return fc_out.call(h).MoveToOuterDisposeScope();
    }
}
