using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Gpt2;

/// <summary>The GPT-2 trunk: token and learned position embeddings, the decoder blocks, final LayerNorm (prefix <c>transformer.</c>).</summary>
public sealed class Gpt2Model : nn.Module<CausalLMInput, Tensor>
{
    private nn.Module<Tensor, Tensor> wte;
    private nn.Module<Tensor, Tensor> wpe;
    private ModuleList<Gpt2Block> h;
    private nn.Module<Tensor, Tensor> ln_f;
    private readonly int _maxPositions;
    private readonly LoraRouting? _lora;

    public Gpt2Model(Gpt2Config config, LayerFactory layers) : base(nameof(Gpt2Model))
    {
        wte = layers.Embedding(config.VocabSize, config.HiddenSize);
        wpe = layers.PositionEmbedding(config.MaxPositions, config.HiddenSize);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.LayerCount).Select(i => new Gpt2Block(config, i, layers)).ToArray());
        ln_f = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        _maxPositions = config.MaxPositions;
        _lora = layers.Lora;
        RegisterComponents();
    }

    /// <summary>The token embedding, which the tied lm_head shares.</summary>
    internal nn.Module<Tensor, Tensor> TokenEmbedding => wte;

    /// <summary>Returns the final hidden states (B, T, E).</summary>
    public override Tensor forward(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        var mask = new CausalMask(input, _maxPositions);
        // hidden_states = inputs_embeds + position_embeds
        var hidden = wte.call(input.InputIds) + wpe.call(mask.Positions);
        var checkpointed = BlockCheckpointing.Applies(input, training);
        for (var i = 0; i < h.Count; i++)
        {
            var block = h[i];
            hidden = checkpointed
                ? BlockCheckpointing.Run((x, c) => block.call(new BlockInput(x, c[0], null)), hidden, _lora, input.Adapters, mask.Allowed)
                : block.call(new BlockInput(hidden, mask.Allowed, input.Cache?.Layer(i)));
        }
        input.Cache?.Advance(input.InputIds.size(1));
        return ln_f.call(hidden).MoveToOuterDisposeScope();
    }
}
