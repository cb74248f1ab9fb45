using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>c_fc → gelu_new → c_proj (both Linear with bias).</summary>
public sealed class GptNeoMlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> c_fc;
    private nn.Module<Tensor, Tensor> c_proj;

    public GptNeoMlp(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoMlp))
    {
        c_fc = layers.Linear(config.HiddenSize, config.EffectiveInnerSize, hasBias: true, adaptable: true);
        c_proj = layers.Linear(config.EffectiveInnerSize, config.HiddenSize, hasBias: true, adaptable: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // gelu_new: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), PyTorch's tanh-approximate GELU
        var h = nn.functional.gelu(c_fc.forward(x), TorchSharp.Modules.GELU.Approximate.tanh);
        return c_proj.forward(h).MoveToOuterDisposeScope();
    }
}
