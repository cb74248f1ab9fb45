using ParaphraseService.Model.Core;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// The cache of a continuous batch: a fixed number of slots, each holding one sequence of its own length. A decode
/// step feeds one token for every slot and each slot writes its new key and value at its own position; attention
/// reads positions [0, <see cref="Length"/>] and a per-row mask hides what a shorter row has not written. Sequences
/// join (their prefilled cache copied into a free slot) and leave between steps without disturbing the others.
/// </summary>
public sealed class SlotKvCache : IKvCache, IDisposable
{
    private readonly SlotLayer[] _layers;
    private readonly int[] _lengths;

    public SlotKvCache(int layerCount, int slots, int capacity)
    {
        if (slots < 1 || capacity < 2)
            throw new ArgumentOutOfRangeException(nameof(slots), "A slot cache needs at least one slot and room for two positions.");
        Capacity = capacity;
        _lengths = new int[slots];
        _layers = Enumerable.Range(0, layerCount).Select(_ => new SlotLayer(this)).ToArray();
    }

    public int Capacity { get; }
    public int Slots => _lengths.Length;

    /// <summary>Positions stored in each slot.</summary>
    public IReadOnlyList<int> Lengths => _lengths;

    /// <summary>The longest slot: a decode step attends to positions [0, Length] (its new token included).</summary>
    public int Length => _lengths.Max();

    ILayerKvCache IKvCache.Layer(int index) => _layers[index];

    /// <summary>
    /// Which slots a decode step extends. The others (idle, or prefilled this very iteration) still compute a row, and
    /// it writes at their current length, where their next real token will overwrite it; their length stays.
    /// </summary>
    public IReadOnlyList<bool>? Stepping { get; set; }

    /// <summary>After a decode step each stepping slot holds one more position.</summary>
    public void Advance(long count)
    {
        if (count != 1)
            throw new InvalidOperationException("A slot cache advances by single decode steps; prefill into a KvCache and Load it.");
        for (var s = 0; s < _lengths.Length; s++)
            if (Stepping is null || Stepping[s])
                _lengths[s]++;
    }

    /// <summary>Slot s's valid positions after the coming step: (S, Length + 1), 1 for [0, length_s], 0 beyond.</summary>
    public Tensor StepMask(Device device)
    {
        var width = Length + 1;
        var mask = new long[_lengths.Length, width];
        for (var s = 0; s < _lengths.Length; s++)
            for (var t = 0; t <= _lengths[s]; t++)
                mask[s, t] = 1;
        return tensor(mask, device: device);
    }

    /// <summary>The position each slot's next token takes: (S, 1).</summary>
    public Tensor StepPositions(Device device) => tensor(_lengths.Select(l => (long)l).ToArray(), device: device).unsqueeze(1);

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
        foreach (var layer in _layers) layer.Dispose();
    }

    private sealed class SlotLayer(SlotKvCache owner) : ILayerKvCache, IDisposable
    {
        private Tensor? _keys;   // (S, H, capacity, D)
        private Tensor? _values;

        public (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values)
        {
            if (keys.shape[0] != owner.Slots || keys.shape[2] != 1)
                throw new ArgumentException($"A slot cache step takes one token for each of its {owner.Slots} slots.");
            if (owner.Length + 1 > owner.Capacity)
                throw new InvalidOperationException($"A slot is full: {owner.Capacity} positions.");
            Allocate(keys);
            // Each row writes at its own position: index (S, H, 1, D) filled with that row's length.
            using var position = tensor(owner._lengths.Select(l => (long)l).ToArray(), device: keys.device)
                .view(-1, 1, 1, 1).expand(keys.shape);
            _keys!.scatter_(2, position, keys);
            _values!.scatter_(2, position, values);
            var width = owner.Length + 1;
            return (_keys.narrow(2, 0, width), _values.narrow(2, 0, width));
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
            _keys = zeros(shape, like.dtype, like.device).DetachFromDisposeScope();
            _values = zeros(shape, like.dtype, like.device).DetachFromDisposeScope();
        }

        public void Dispose()
        {
            _keys?.Dispose();
            _values?.Dispose();
        }
    }
}
