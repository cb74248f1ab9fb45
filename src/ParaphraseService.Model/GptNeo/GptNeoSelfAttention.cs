using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>
/// GPT-Neo's causal self-attention, global or local (the local window is in the mask the block receives). Scores in
/// fp32 and, unlike GPT-J and GPT-2, not scaled by 1/sqrt(head_dim). q, k, v have no bias; out_proj has one.
/// </summary>
public sealed class GptNeoSelfAttention : nn.Module<BlockInput, Tensor>
{
    private nn.Module<Tensor, Tensor> k_proj;
    private nn.Module<Tensor, Tensor> v_proj;
    private nn.Module<Tensor, Tensor> q_proj;
    private nn.Module<Tensor, Tensor> out_proj;
    private readonly int _heads;
    private readonly int _headDim;

    public GptNeoSelfAttention(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoSelfAttention))
    {
        var e = config.HiddenSize;
        k_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        v_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        q_proj = layers.Linear(e, e, hasBias: false, adaptable: true);
        out_proj = layers.Linear(e, e, hasBias: true, adaptable: true);
        _heads = config.HeadCount;
        _headDim = config.HeadDim;
        RegisterComponents();
    }

    public override Tensor forward(BlockInput input)
    {
        using var scope = NewDisposeScope();
        var x = input.Hidden;
        var q = MultiHeadAttention.SplitHeads(q_proj.call(x), _heads, _headDim); // (B, H, T, D)
        var k = MultiHeadAttention.SplitHeads(k_proj.call(x), _heads, _headDim);
        var v = MultiHeadAttention.SplitHeads(v_proj.call(x), _heads, _headDim);
        // attn_weights = torch.matmul(query, key.transpose(-1, -2)): no division by sqrt(head_dim)
        var context = MultiHeadAttention.Attend(q, k, v, input.Allowed, input.Cache); // (B, T, E)
        return out_proj.call(context).MoveToOuterDisposeScope();
    }
}
