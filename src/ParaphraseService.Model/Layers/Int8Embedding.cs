using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>The token embedding stored as int8 rows with one fp32 scale per token; looked-up rows are dequantized.</summary>
public sealed class Int8Embedding : nn.Module<Tensor, Tensor>, IQuantizedWeightLayer
{
    private readonly long _count;
    private readonly long _dim;
    private readonly ScalarType _dtype;
    // A holder, not Tensor fields: see Int8Linear.
    private (Tensor Q, Tensor Scale)? _weights;

    public Int8Embedding(long count, long dim, ScalarType dtype) : base(nameof(Int8Embedding)) => (_count, _dim, _dtype) = (count, dim, dtype);

    public long[] WeightShape => [_count, _dim];

    public long WeightBytes => _weights is { } w ? w.Q.NumberOfElements + w.Scale.NumberOfElements * 4 : 0;

    public void LoadWeight(Tensor weight, Device device)
    {
        var (q, scale) = RowwiseInt8.Quantize(weight, device);
        Replace(q, scale);
    }

    public void LoadQuantizedWeight(Tensor q, Tensor scale, Device device)
    {
        if (!q.shape.SequenceEqual(WeightShape) || q.dtype != ScalarType.Int8 || !scale.shape.SequenceEqual([_count]))
            throw new ArgumentException($"Int8Embedding [{_count}, {_dim}] got weight {q.dtype} [{string.Join(", ", q.shape)}] and scale [{string.Join(", ", scale.shape)}].");
        Replace(q.to(device), scale.to(ScalarType.Float32, device));
    }

    private void Replace(Tensor q, Tensor scale)
    {
        Dispose(_weights);
        _weights = (q.DetachFromDisposeScope(), scale.DetachFromDisposeScope());
        Version++;
    }

    /// <summary>The int8 table [count, dim] and its row scales [count], for a tied output layer; null before loading.</summary>
    internal (Tensor Q, Tensor Scale)? Quantized => _weights;

    /// <summary>Counts weight loads, so a tied output layer knows when to rebuild from the table.</summary>
    internal int Version { get; private set; }

    /// <summary>(…) ids → (…, dim) vectors in the model dtype.</summary>
    public override Tensor forward(Tensor ids)
    {
        var (q, scale) = _weights ?? throw new InvalidOperationException("Int8Embedding has no weight loaded.");
        using var scope = NewDisposeScope();
        var flat = ids.flatten();
        var shape = TensorMemory.ShapeWithLast(ids, _dim, replaceLast: false);
        var rows = q.index_select(0, flat).to(_dtype) * scale.index_select(0, flat).to(_dtype).unsqueeze(1);
        return rows.view(shape).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Dispose(_weights);
        base.Dispose(disposing);
    }

    private static void Dispose((Tensor Q, Tensor Scale)? weights)
    {
        weights?.Q.Dispose();
        weights?.Scale.Dispose();
    }
}
