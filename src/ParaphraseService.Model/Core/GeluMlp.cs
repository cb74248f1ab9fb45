using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>
/// GPT-2's and GPT-Neo's feed-forward block: c_fc → gelu_new → c_proj, both with bias (GPT-2 stores them as Conv1D,
/// loaded here as Linear; see Gpt2Attention). GPT-J's has other names (fc_in, fc_out) and its own class.
/// </summary>
public sealed class GeluMlp : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> c_fc;
    private nn.Module<Tensor, Tensor> c_proj;
    private NewGelu act = new();

    public GeluMlp(long hiddenSize, long innerSize, LayerFactory layers) : base(nameof(GeluMlp))
    {
        c_fc = layers.Linear(hiddenSize, innerSize, hasBias: true, adaptable: true);
        c_proj = layers.Linear(innerSize, hiddenSize, hasBias: true, adaptable: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = act.call(c_fc.call(x));
        return c_proj.call(h).MoveToOuterDisposeScope();
    }
}
