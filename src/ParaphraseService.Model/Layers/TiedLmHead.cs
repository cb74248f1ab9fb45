using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// The language-model head of a model with tied embeddings (GPT-Neo, GPT-2): logits = hidden · wteᵀ, the token
/// embedding's own weight, never a copy from the checkpoint. It holds no parameters, so the loader expects no
/// <c>lm_head.weight</c>. With int8 weights the embedding's int8 table and row scales serve as the head's weight as
/// they are (a per-token scale is a per-output-row scale): the table is quantized once, on loading. On the CPU the
/// fbgemm kernel packs its own copy of that table (one more byte per weight: fbgemm cannot look rows up in its packed
/// form); the dequantize kernel reads the embedding's table directly.
/// </summary>
public sealed class TiedLmHead : nn.Module<Tensor, Tensor>
{
    // A holder, not module fields: registering the embedding here would give it a second name (lm_head.weight) and
    // the int8 head layer would be taken for a checkpoint weight.
    private readonly Shared _shared;

    internal TiedLmHead(nn.Module<Tensor, Tensor> embedding, ScalarType dtype, Int8Options int8) : base(nameof(TiedLmHead)) =>
        _shared = new Shared(embedding, dtype, int8);

    /// <summary>(…, E) hidden states → (…, V) logits in the model dtype.</summary>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var logits = _shared.Embedding switch
        {
            // lm_logits = self.lm_head(hidden_states), with lm_head.weight = transformer.wte.weight
            TokenEmbedding table => nn.functional.linear(hidden, table.weight),
            Int8Embedding table => _shared.Int8Head(table).call(hidden),
            var other => throw new NotSupportedException($"A tied head cannot share the weight of a {other.GetType().Name}."),
        };
        return logits.MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _shared.Dispose();
        base.Dispose(disposing);
    }

    private sealed class Shared(nn.Module<Tensor, Tensor> embedding, ScalarType dtype, Int8Options int8) : IDisposable
    {
        private Int8Linear? _head;
        private int _version = -1;

        public nn.Module<Tensor, Tensor> Embedding { get; } = embedding;

        /// <summary>An int8 Linear [V, E] on the embedding's table, rebuilt only when the table was loaded again.</summary>
        public Int8Linear Int8Head(Int8Embedding table)
        {
            if (_head is not null && _version == table.Version)
                return _head;
            var (q, scale) = table.Quantized ?? throw new InvalidOperationException("The tied embedding has no weight loaded.");
            _head?.Dispose();
            _head = new Int8Linear(q.shape[1], q.shape[0], hasBias: false, dtype, int8);
            // Aliases: the layer takes its own handles and must never dispose the embedding's.
            using var qAlias = q.alias();
            using var scaleAlias = scale.alias();
            _head.LoadQuantizedWeight(qAlias, scaleAlias, q.device);
            _version = table.Version;
            return _head;
        }

        public void Dispose() => _head?.Dispose();
    }
}
