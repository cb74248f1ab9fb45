using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptNeo;

/// <summary>
/// The GPT-Neo trunk: token and learned position embeddings, the decoder blocks (global and local attention as
/// <c>attention_types</c> says), final LayerNorm (checkpoint prefix <c>transformer.</c>).
/// </summary>
public sealed class GptNeoModel : nn.Module<CausalLMInput, Tensor>
{
    private nn.Module<Tensor, Tensor> wte;
    private nn.Module<Tensor, Tensor> wpe;
    private ModuleList<GptNeoBlock> h;
    private nn.Module<Tensor, Tensor> ln_f;
    private readonly bool[] _local;
    private readonly int _window;
    private readonly int _maxPositions;
    private readonly LoraRouting? _lora;

    public GptNeoModel(GptNeoConfig config, LayerFactory layers) : base(nameof(GptNeoModel))
    {
        wte = layers.Embedding(config.VocabSize, config.HiddenSize);
        wpe = layers.PositionEmbedding(config.MaxPositions, config.HiddenSize);
        h = new ModuleList<GptNeoBlock>(Enumerable.Range(0, config.LayerCount).Select(_ => new GptNeoBlock(config, layers)).ToArray());
        ln_f = layers.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        _local = config.AttentionLayers.Select(kind => kind == "local").ToArray();
        _window = config.WindowSize;
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
        // Global layers: causal and not padding; local layers also only the last window_size positions.
        var local = _local.Any(l => l) ? mask.Local(_window) : null;

        // hidden_states = inputs_embeds + position_embeds
        var hidden = wte.call(input.InputIds) + wpe.call(mask.Positions);
        var checkpointed = BlockCheckpointing.Applies(input, training);
        for (var i = 0; i < h.Count; i++)
        {
            var (block, allowed) = (h[i], _local[i] ? local! : mask.Allowed);
            hidden = checkpointed
                ? BlockCheckpointing.Run((x, c) => block.call(new BlockInput(x, c[0], null)), hidden, _lora, input.Adapters, allowed)
                : block.call(new BlockInput(hidden, allowed, input.Cache?.Layer(i)));
        }
        input.Cache?.Advance(input.InputIds.size(1));
        return ln_f.call(hidden).MoveToOuterDisposeScope();
    }
}
