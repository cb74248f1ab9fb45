using ParaphraseService.Model.Core;
using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// The cache of a continuous batch: a fixed number of slots, each holding one sequence of its own length. A decode
/// step (<see cref="BeginStep"/>) feeds T tokens to some of the slots (its rows); each row writes its keys and values
/// at its own positions [length, length + T), attention reads positions [0, <see cref="Length"/> + T) and a per-row
/// mask (<see cref="StepMask"/>, with the causal mask over positions) hides what a row has not written. After the
/// step every row holds T more positions; <see cref="Truncate"/> rolls a row back past tokens it rejected (speculative
/// decoding), whose stale entries lie beyond its length and are overwritten by its next step. Sequences join (their
/// prefilled cache copied into a free slot) and leave between steps without disturbing the others.
/// </summary>
public sealed class SlotKvCache : IKvCache, IDisposable
{
    private readonly SlotLayer[] _layers;
    private readonly int[] _lengths;
    private int[] _rows;
    private int _tokens = 1;
    private StepIndex? _index;

    /// <param name="storage">The dtype keys and values are kept in; null: the one they arrive in.</param>
    public SlotKvCache(int layerCount, int slots, int capacity, ScalarType? storage = null)
    {
        if (slots < 1 || capacity < 2)
            throw new ArgumentOutOfRangeException(nameof(slots), "A slot cache needs at least one slot and room for two positions.");
        Capacity = capacity;
        Storage = storage;
        _lengths = new int[slots];
        _rows = Enumerable.Range(0, slots).ToArray();
        _layers = Enumerable.Range(0, layerCount).Select(_ => new SlotLayer(this)).ToArray();
    }

    public int Capacity { get; }

    /// <summary>The dtype keys and values are kept in; null: the one they arrive in.</summary>
    public ScalarType? Storage { get; }

    public int Slots => _lengths.Length;

    /// <summary>Positions stored in each slot.</summary>
    public IReadOnlyList<int> Lengths => _lengths;

    /// <summary>The longest row of the coming step: its attention covers positions [0, Length + T).</summary>
    public int Length => _rows.Max(r => _lengths[r]);

    /// <summary>The slots the coming step feeds, in row order (until <see cref="BeginStep"/>: every slot, one token each).</summary>
    public IReadOnlyList<int> Rows => _rows;

    ILayerKvCache IKvCache.Layer(int index) => _layers[index];

    /// <summary>The next forward feeds <paramref name="tokens"/> positions to each of <paramref name="rows"/> (slots, in batch order).</summary>
    public void BeginStep(IReadOnlyList<int> rows, int tokens)
    {
        if (rows.Count == 0 || tokens < 1)
            throw new ArgumentException("A step feeds at least one token to at least one slot.");
        foreach (var slot in rows)
        {
            if (slot < 0 || slot >= Slots) throw new ArgumentOutOfRangeException(nameof(rows), $"There is no slot {slot}.");
            if (_lengths[slot] + tokens > Capacity)
                throw new InvalidOperationException($"Slot {slot} holds {_lengths[slot]} of {Capacity} positions: {tokens} more do not fit.");
        }
        _rows = [.. rows];
        _tokens = tokens;
        _index?.Dispose();
        _index = null;
    }

    /// <summary>After a step every row holds its T new positions (see <see cref="Truncate"/> to drop some).</summary>
    public void Advance(long count)
    {
        if (count != _tokens)
            throw new InvalidOperationException($"The step fed {count} tokens per row where {_tokens} were announced.");
        foreach (var slot in _rows)
            _lengths[slot] += _tokens;
        // The next step writes further on.
        _index?.Dispose();
        _index = null;
    }

    /// <summary>Keeps only a slot's first <paramref name="length"/> positions (what its rejected draft tokens wrote goes).</summary>
    public void Truncate(int slot, int length)
    {
        if (length < 0 || length > _lengths[slot])
            throw new ArgumentOutOfRangeException(nameof(length), $"Slot {slot} holds {_lengths[slot]} positions, not {length}.");
        _lengths[slot] = length;
    }

    /// <summary>Each row's valid keys in the coming step: (B, Length + T), 1 for [0, length_row + T), 0 beyond.</summary>
    public Tensor StepMask(Device device)
    {
        var width = Length + _tokens;
        var mask = new long[_rows.Length, width];
        for (var r = 0; r < _rows.Length; r++)
            for (var t = 0; t < _lengths[_rows[r]] + _tokens; t++)
                mask[r, t] = 1;
        return tensor(mask, device: device);
    }

    /// <summary>The positions the coming step's tokens take: (B, T), row r's at [length_r, length_r + T).</summary>
    public Tensor StepPositions(Device device)
    {
        var positions = new long[_rows.Length, _tokens];
        for (var r = 0; r < _rows.Length; r++)
            for (var t = 0; t < _tokens; t++)
                positions[r, t] = _lengths[_rows[r]] + t;
        return tensor(positions, device: device);
    }

    /// <summary>Copies one prefilled row (its positions [start, start + length) of <paramref name="prefilled"/>) into a slot.</summary>
    public void Load(int slot, KvCache prefilled, int row, int start, int length)
    {
        if (length + 1 > Capacity)
            throw new ArgumentException($"A sequence of {length} positions does not fit slots of {Capacity}.");
        for (var i = 0; i < _layers.Length; i++)
        {
            var stored = prefilled.Layer(i).Stored ?? throw new InvalidOperationException("The prefill cache is empty.");
            _layers[i].Load(slot, stored.Keys[row].narrow(1, start, length), stored.Values[row].narrow(1, start, length));
        }
        _lengths[slot] = length;
    }

    /// <summary>Frees a slot for the next sequence.</summary>
    public void Clear(int slot) => _lengths[slot] = 0;

    public void Dispose()
    {
        _index?.Dispose();
        foreach (var layer in _layers) layer.Dispose();
    }

    /// <summary>
    /// Where a step's rows write and what they read, built once per step and shared by every layer; its index tensors
    /// only when a layer needs them (the CPU copy writes without them, and a step over consecutive slots reads a view).
    /// </summary>
    private sealed class StepIndex(SlotKvCache owner, Device device) : IDisposable
    {
        private Tensor? _slots;
        private Tensor[]? _write;

        /// <summary>
        /// The first of the rows' slots where they are consecutive slots in order (every slot, or one request alone in
        /// any slot): what they read is then a view, not a copy of each layer's keys and values.
        /// </summary>
        public int? FirstOfConsecutive { get; } =
            owner._rows.Length > 0 && owner._rows.Select((slot, r) => slot == owner._rows[0] + r).All(x => x) ? owner._rows[0] : null;

        /// <summary>The step's slots in row order.</summary>
        // Index tensors outlive the forward's (and each layer's) dispose scope: disposed with the step.
        public Tensor Slots => _slots ??= tensor(owner._rows.Select(s => (long)s).ToArray(), device: device).DetachFromDisposeScope();

        /// <summary>keys[slots[r], h, positions[r, t]] = new[r, h, t]: indices broadcast to (B, H, T), for index_put_.</summary>
        public TensorIndex[] WriteAt(long heads)
        {
            if (_write is null)
            {
                var rows = owner._rows;
                var positions = new long[rows.Length, owner._tokens];
                for (var r = 0; r < rows.Length; r++)
                    for (var t = 0; t < owner._tokens; t++)
                        positions[r, t] = owner._lengths[rows[r]] + t;
                _write =
                [
                    Slots.view(-1, 1, 1).DetachFromDisposeScope(),
                    arange(heads, device: device).view(1, -1, 1).DetachFromDisposeScope(),
                    tensor(positions, device: device).unsqueeze(1).DetachFromDisposeScope(),
                ];
            }
            return [.. _write.Select(TensorIndex.Tensor)];
        }

        public void Dispose()
        {
            _slots?.Dispose();
            foreach (var t in _write ?? []) t.Dispose();
        }
    }

    private sealed class SlotLayer(SlotKvCache owner) : ILayerKvCache, IDisposable
    {
        private Tensor? _keys;   // (S, H, capacity, D)
        private Tensor? _values;

        public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
        {
            if (keys.size(0) != owner._rows.Length || keys.size(2) != owner._tokens)
                throw new ArgumentException($"This step feeds {owner._tokens} token(s) to each of {owner._rows.Length} slot(s), not {keys.shape[2]} to {keys.shape[0]}.");
            Allocate(keys);
            var index = owner._index ??= new StepIndex(owner, keys.device);
            if (CopiesOnCpu(keys, values))
            {
                Write(_keys!, keys);
                Write(_values!, values);
            }
            else
            {
                var at = index.WriteAt(keys.size(1));
                _keys!.index_put_(keys.to(_keys.dtype), at);
                _values!.index_put_(values.to(_values.dtype), at);
            }
            var width = owner.Length + owner._tokens;
            var (allKeys, allValues) = (_keys!.narrow(2, 0, width), _values!.narrow(2, 0, width));
            return index.FirstOfConsecutive is { } first
                ? (allKeys.narrow(0, first, owner._rows.Length), allValues.narrow(0, first, owner._rows.Length))
                : (allKeys.index_select(0, index.Slots), allValues.index_select(0, index.Slots));
        }

        // Two advanced-indexing writes per layer cost more than the copy itself in a decode step; on the CPU, for fp32
        // inference, the rows are copied directly, into an fp32 or a bfloat16 cache (LibTorch's index_put_ elsewhere, and
        // wherever gradients are recorded).
        private bool CopiesOnCpu(Tensor keys, Tensor values) =>
            CpuKernels.Active && keys.device_type == DeviceType.CPU && values.device_type == DeviceType.CPU
            && _keys!.dtype is ScalarType.Float32 or ScalarType.BFloat16 && keys.dtype == ScalarType.Float32 && values.dtype == ScalarType.Float32
            && keys.stride(3) == 1 && values.stride(3) == 1 && values.size(3) == _values!.size(3) && keys.size(3) == _keys.size(3);

        // cache[slots[r], h, lengths[slots[r]] + t, :] = fresh[r, h, t, :], in the cache's dtype (rounded by LibTorch, as
        // for index_put_, where the cache keeps bfloat16)
        private unsafe void Write(Tensor cache, Tensor fresh)
        {
            var stored = fresh.dtype == cache.dtype ? fresh : fresh.to(cache.dtype);
            if (stored.stride(3) != 1) stored = stored.contiguous();
            var (heads, tokens, d) = ((int)stored.size(1), (int)stored.size(2), (int)stored.size(3));
            var element = stored.ElementSize;
            var source = TensorMemory.StridedData(stored);
            var (s0, s1, s2) = (stored.stride(0) * element, stored.stride(1) * element, stored.stride(2) * element);
            var target = TensorMemory.StridedData(cache);
            var bytes = d * element;
            for (var r = 0; r < owner._rows.Length; r++)
            {
                var slot = owner._rows[r];
                for (var h = 0; h < heads; h++)
                {
                    for (var t = 0; t < tokens; t++)
                    {
                        var to = target + (((long)slot * heads + h) * owner.Capacity + owner._lengths[slot] + t) * bytes;
                        Buffer.MemoryCopy(source + r * s0 + h * s1 + t * s2, to, bytes, bytes);
                    }
                }
            }
        }

        public void Load(int slot, Tensor keys, Tensor values)
        {
            Allocate(keys.unsqueeze(0));
            _keys![slot].narrow(1, 0, keys.shape[1]).copy_(keys);
            _values![slot].narrow(1, 0, values.shape[1]).copy_(values);
        }

        private void Allocate(Tensor like)
        {
            if (_keys is not null) return;
            long[] shape = [owner.Slots, like.shape[1], owner.Capacity, like.shape[3]];
            _keys = zeros(shape, owner.Storage ?? like.dtype, like.device).DetachFromDisposeScope();
            _values = zeros(shape, owner.Storage ?? like.dtype, like.device).DetachFromDisposeScope();
        }

        public void Dispose()
        {
            _keys?.Dispose();
            _values?.Dispose();
        }
    }
}
