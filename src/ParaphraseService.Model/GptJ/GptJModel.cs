using ParaphraseService.Model.Core;
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
    private readonly int _maxPositions;
    private readonly LoraRouting? _lora;

    public GptJModel(GptJConfig config, LayerFactory layers) : base(nameof(GptJModel))
    {
        _rotary = new RotaryEmbedding(config.EffectiveRotaryDim, config.MaxPositions);
        wte = layers.Embedding(config.VocabSize, config.HiddenSize);
        h = new ModuleList<GptJBlock>(Enumerable.Range(0, config.LayerCount)
            .Select(_ => new GptJBlock(config, _rotary, layers)).ToArray());
        ln_f = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        _maxPositions = config.MaxPositions;
        _lora = layers.Lora;
        RegisterComponents();
    }

    /// <summary>Returns the final hidden states (B, T, E).</summary>
    public override Tensor forward(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        // Causal and padding mask (B, 1, T, S) and the new tokens' positions, as for every family.
        var mask = new CausalMask(input, _maxPositions);
        var rotary = _rotary.Angles(mask.Positions);

        var hidden = wte.call(input.InputIds);
        var checkpointed = BlockCheckpointing.Applies(input, training);
        for (var i = 0; i < h.Count; i++)
        {
            var block = h[i];
            hidden = checkpointed
                ? BlockCheckpointing.Run((x, c) => block.call(new AttentionInput(x, c[0], new RotaryAngles(c[1], c[2]), null)),
                    hidden, _lora, input.Adapters, mask.Allowed, rotary.Sin, rotary.Cos)
                : block.call(new AttentionInput(hidden, mask.Allowed, rotary, input.Cache?.Layer(i)));
        }
        input.Cache?.Advance(input.InputIds.size(1));
        return ln_f.call(hidden).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
