using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
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
    private readonly LoraRouting? _lora;

    public GptJModel(GptJConfig config, LayerFactory layers) : base(nameof(GptJModel))
    {
        _rotary = new RotaryEmbedding(config.EffectiveRotaryDim, config.MaxPositions);
        _lora = layers.Lora;
        wte = layers.Embedding(config.VocabSize, config.HiddenSize);
        h = new ModuleList<GptJBlock>(Enumerable.Range(0, config.LayerCount)
            .Select(_ => new GptJBlock(config, _rotary, layers)).ToArray());
        ln_f = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>Recompute each block's activations in the backward pass instead of keeping them (training only).</summary>
    public bool GradientCheckpointing { get; set; }

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
        var checkpointed = GradientCheckpointing && training && input.Cache is null && is_grad_enabled();
        for (var i = 0; i < h.Count; i++)
            hidden = checkpointed
                ? GradientCheckpoint.Run(CheckpointedBlock(h[i], input.Adapters), hidden, allowed, rotary.Sin, rotary.Cos)
                : h[i].forward(new AttentionInput(hidden, allowed, rotary, input.Cache?.Layer(i)));
        input.Cache?.Advance(t);
        return ln_f.forward(hidden).MoveToOuterDisposeScope();
    }

    // The backward pass runs the block again after this forward has returned: the adapters' routing is set again for it.
    private Func<Tensor, IReadOnlyList<Tensor>, Tensor> CheckpointedBlock(GptJBlock block, IReadOnlyList<LoraAdapter?>? adapters) =>
        (x, constants) =>
        {
            using var routing = _lora?.Rows is null ? _lora?.Use(adapters) : null;
            return block.forward(new AttentionInput(x, constants[0], new RotaryAngles(constants[1], constants[2]), null));
        };

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
