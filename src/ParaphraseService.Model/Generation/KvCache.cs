using ParaphraseService.Model.Core;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Keys and values of every layer for a batch of sequences, preallocated to a fixed capacity so each decode step
/// writes one slice instead of re-concatenating the whole history. Owns its tensors; dispose it when done.
/// </summary>
public sealed class KvCache : IKvCache, IDisposable
{
    private readonly LayerKvCache[] _layers;

    /// <param name="storage">The dtype keys and values are kept in; null: the one they arrive in.</param>
    public KvCache(int layerCount, int capacity, ScalarType? storage = null)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), "The cache capacity must be positive.");
        Capacity = capacity;
        Storage = storage;
        _layers = Enumerable.Range(0, layerCount).Select(_ => new LayerKvCache(this)).ToArray();
    }

    /// <summary>Positions the cache can hold (prompt plus generated tokens).</summary>
    public int Capacity { get; }

    /// <summary>The dtype keys and values are kept in; null: the one they arrive in.</summary>
    public ScalarType? Storage { get; }

    /// <summary>Positions already stored.</summary>
    public int Length { get; private set; }

    public LayerKvCache Layer(int index) => _layers[index];

    ILayerKvCache IKvCache.Layer(int index) => _layers[index];

    /// <summary>Called by the model once every layer has appended the new positions.</summary>
    public void Advance(long count) => Length += (int)count;

    /// <summary>Bytes held by the preallocated key and value tensors.</summary>
    public long Bytes => _layers.Sum(l => l.Bytes);

    public void Dispose()
    {
        foreach (var layer in _layers) layer.Dispose();
    }
}

/// <summary>One layer's keys and values, (B, H, capacity, D) each, allocated at the first append.</summary>
public sealed class LayerKvCache : ILayerKvCache, IDisposable
{
    private readonly KvCache _owner;
    private Tensor? _keys;
    private Tensor? _values;

    internal LayerKvCache(KvCache owner) => _owner = owner;

    internal long Bytes => (_keys?.NumberOfElements ?? 0) * (_keys?.ElementSize ?? 0) * 2;

    /// <summary>The preallocated keys and values, (B, H, capacity, D) each; null before the first append.</summary>
    internal (Tensor Keys, Tensor Values)? Stored => _keys is null ? null : (_keys, _values!);

    /// <summary>Stores the new positions' keys and values (B, H, T, D); returns all keys and values so far (B, H, S, D).</summary>
    public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
    {
        var start = _owner.Length;
        var count = keys.size(2);
        if (start + count > _owner.Capacity)
            throw new InvalidOperationException($"The KV cache holds {_owner.Capacity} positions; {start} are used and {count} more were added.");
        if (_keys is null)
        {
            long[] shape = [keys.shape[0], keys.shape[1], _owner.Capacity, keys.shape[3]];
            // Long-lived: detached from the forward's dispose scope, freed by Dispose().
            _keys = zeros(shape, _owner.Storage ?? keys.dtype, keys.device).DetachFromDisposeScope();
            _values = zeros(shape, _owner.Storage ?? values.dtype, values.device).DetachFromDisposeScope();
        }
        _keys.narrow(2, start, count).copy_(keys);
        _values!.narrow(2, start, count).copy_(values);
        return (_keys.narrow(2, 0, start + count), _values.narrow(2, 0, start + count));
    }

    public void Dispose()
    {
        _keys?.Dispose();
        _values?.Dispose();
    }
}
