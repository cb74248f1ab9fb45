using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>The GPT-J trunk: token embedding, the decoder blocks, final LayerNorm (checkpoint prefix <c>transformer.</c>).</summary>
public sealed class GptJModel : nn.Module<CausalLMInput, Tensor>
{
    private nn.Module<Tensor, Tensor> wte;
    private ModuleList<GptJBlock> h;
    private nn.Module<Tensor, Tensor> ln_f;
    private readonly RotaryEmbedding _rotary;

    public GptJModel(GptJConfig config, LayerFactory layers) : base(nameof(GptJModel))
    {
        _rotary = new RotaryEmbedding(config.EffectiveRotaryDim, config.MaxPositions);
        wte = layers.Embedding(config.VocabSize, config.HiddenSize);
        h = new ModuleList<GptJBlock>(Enumerable.Range(0, config.LayerCount)
            .Select(_ => new GptJBlock(config, _rotary, layers)).ToArray());
        ln_f = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>Returns the final hidden states (B, T, E).</summary>
    public override Tensor forward(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        var ids = input.InputIds;
        var (b, t) = (ids.shape[0], ids.shape[1]);
        var past = input.Cache?.Length ?? 0;
        var device = ids.device;

        var mask = input.AttentionMask?.to(ScalarType.Bool) ?? torch.ones(b, past + t, ScalarType.Bool, device);
        if (mask.shape[1] != past + t)
            throw new ArgumentException($"attention_mask covers {mask.shape[1]} positions but the cache holds {past} and the input {t}.");
        var positions = input.PositionIds ?? PositionIds.FromAttentionMask(mask)[.., (int)past..];
        var rotary = _rotary.Angles(positions);

        // Query t (absolute past + t) may see key s when s <= past + t and s is not padding: (B, 1, T, S).
        var causal = torch.ones(t, past + t, ScalarType.Bool, device).tril(past);
        var allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(mask.unsqueeze(1).unsqueeze(1));

        var hidden = wte.forward(ids);
        for (var i = 0; i < h.Count; i++)
            hidden = h[i].forward(new AttentionInput(hidden, allowed, rotary, input.Cache?.Layer(i)));
        input.Cache?.Advance(t);
        return ln_f.forward(hidden).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
