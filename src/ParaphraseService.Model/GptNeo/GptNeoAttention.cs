using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>GPT-Neo's attention wrapper: it only holds the self-attention, hence keys like <c>attn.attention.q_proj</c>.</summary>
public sealed class GptNeoAttention : nn.Module<BlockInput, Tensor>
{
    private GptNeoSelfAttention attention;

    public GptNeoAttention(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoAttention))
    {
        attention = new GptNeoSelfAttention(config, layers);
        RegisterComponents();
    }

    public override Tensor forward(BlockInput input) => attention.call(input);
}
