using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora;

/// <summary>
/// A Linear (full precision or int8) with LoRA adapters beside it: y = base(x) + dropout(x) · Aᵀ · Bᵀ · scaling, each
/// row of the batch with its own adapter (or none). The base matmul runs once for the whole batch, and so does the
/// low-rank part (see forward). Adapter weights stay in fp32 whatever the base stores. Served on a CPU (fp32, no
/// gradient, eval mode), the low-rank part is <see cref="Avx2LoraKernel"/>: one pass per row in place of eight ops.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    // PEFT's name for the wrapped layer; the loader maps "<path>.base_layer.weight" back to the checkpoint's "<path>.weight".
    private nn.Module<Tensor, Tensor> base_layer;
    private readonly LoraRouting _routing;
    // A dictionary, not Tensor fields: adapters come and go and are not part of the base checkpoint.
    private readonly Dictionary<LoraAdapter, LoraAdapter.ModuleWeights> _adapters = new(ReferenceEqualityComparer.Instance);

    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer, long inFeatures, long outFeatures, LoraRouting routing) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _routing = routing;
        RegisterComponents();
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>Adapters currently attached to this layer.</summary>
    public int AdapterCount => _adapters.Count;

    internal void Attach(LoraAdapter adapter, LoraAdapter.ModuleWeights weights)
    {
        if (weights.A.shape[1] != InFeatures || weights.B.shape[0] != OutFeatures)
            throw new ArgumentException($"LoRA weights [{string.Join(", ", weights.A.shape)}] x [{string.Join(", ", weights.B.shape)}] do not fit a [{OutFeatures}, {InFeatures}] layer.");
        _adapters[adapter] = weights;
        ForgetStack();
    }

    internal void Detach(LoraAdapter adapter)
    {
        _adapters.Remove(adapter);
        ForgetStack();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = base_layer.call(x);
        if (_routing.Rows is not { } rows || _adapters.Count == 0)
            return y.MoveToOuterDisposeScope();
        if (rows.Count != x.size(0))
            throw new ArgumentException($"{rows.Count} adapter assignments for a batch of {x.shape[0]} rows.");
        var used = new List<LoraAdapter>(_routing.Adapters.Count);
        foreach (var adapter in _routing.Adapters)
            if (_adapters.ContainsKey(adapter))
                used.Add(adapter);
        if (used.Count == 0)
            return y.MoveToOuterDisposeScope();

        // Every adapter of the batch at once: their A matrices side by side, [Σr, in], and B matrices, [out, Σr].
        // x · A_allᵀ gives each row every adapter's low-rank projection; a per-row mask keeps its own adapter's
        // segment, times that adapter's scaling, and zeroes the rest (rows without an adapter get all zeros); then
        // · B_allᵀ. Two small matmuls for the whole batch, however many adapters it mixes.
        var stack = Stacked(used);
        if (UsesKernel(x, y, stack))
        {
            KernelUpdate(x, y, stack, rows);
            return y.MoveToOuterDisposeScope();
        }
        var input = x.to(ScalarType.Float32);
        if (training)
            input = nn.functional.dropout(input, used.Max(a => _adapters[a].Dropout), training: true);
        // result = result + lora_B(lora_A(dropout(x))) * scaling
        var projected = input.matmul(stack.A.t()); // (B, T, Σr)
        var rowMask = stack.MaskFor(rows, _adapters, x.device);
        if (projected.dim() == 2) rowMask = rowMask.squeeze(1);
        // where, not a product alone: another adapter's segment may hold inf or NaN (a row's own overflow), and 0 · NaN
        // is NaN: one row's failure must stay in its row.
        var delta = where(rowMask.ne(0), projected * rowMask, 0f).matmul(stack.B.t());
        return (y + delta.to(y.dtype)).MoveToOuterDisposeScope();
    }

    private bool UsesKernel(Tensor x, Tensor y, Stack stack) =>
        Avx2LoraKernel.IsSupported && CpuKernels.Active && !training
        && CpuKernels.IsCpuFloat(x) && x.dim() >= 2 && x.size(-1) == InFeatures && CpuKernels.IsCpuFloat(y) && y.size(-1) == OutFeatures
        && y.numel() / OutFeatures == x.numel() / InFeatures && stack.A.device_type == DeviceType.CPU && stack.A.dtype == ScalarType.Float32;

    // In place on y: the base layer's output is a fresh tensor of its own (a linear's product).
    private unsafe void KernelUpdate(Tensor x, Tensor y, Stack stack, IReadOnlyList<LoraAdapter?> rows)
    {
        var segments = new (int Start, int Rank, float Scaling)[rows.Count];
        for (var r = 0; r < rows.Count; r++)
            if (rows[r] is { } adapter && stack.Segments.TryGetValue(adapter, out var segment))
                segments[r] = (segment.Start, segment.Rank, (float)_adapters[adapter].Scaling);
        var positions = (int)(x.numel() / InFeatures / rows.Count);
        Avx2LoraKernel.AddInPlace(TensorMemory.Floats(x), TensorMemory.Floats(y), rows.Count, positions, (int)InFeatures, (int)OutFeatures,
            TensorMemory.Floats(stack.A), TensorMemory.Floats(stack.TransposedB), segments, get_num_threads());
    }

    // The stacked matrices of the adapter set used last; a decode loop keeps the same set for many steps.
    private Stack? _stack;

    private Stack Stacked(List<LoraAdapter> used)
    {
        // Matrices being trained change at every optimizer step and need their autograd graph: no cache then.
        var frozen = used.All(u => !_adapters[u].A.requires_grad && !_adapters[u].B.requires_grad);
        if (frozen && _stack is { } cached && cached.Adapters.SequenceEqual(used))
            return cached;
        _stack?.Dispose();
        var segments = new Dictionary<LoraAdapter, (int Start, int Rank)>();
        var start = 0;
        foreach (var adapter in used)
        {
            var rank = (int)_adapters[adapter].A.size(0);
            segments[adapter] = (start, rank);
            start += rank;
        }
        using var scope = NewDisposeScope();
        var a = cat(used.Select(u => (Tensor)_adapters[u].A).ToList(), 0).DetachFromDisposeScope();
        var b = cat(used.Select(u => (Tensor)_adapters[u].B).ToList(), 1).DetachFromDisposeScope();
        _stack = new Stack(used, segments, start, a, b);
        return _stack;
    }

    private void ForgetStack()
    {
        _stack?.Dispose();
        _stack = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) ForgetStack();
        base.Dispose(disposing);
    }

    private sealed record Stack(List<LoraAdapter> Adapters, Dictionary<LoraAdapter, (int Start, int Rank)> Segments, int Width, Tensor A, Tensor B) : IDisposable
    {
        private IReadOnlyList<LoraAdapter?>? _maskRows;
        private Tensor? _mask;
        private Tensor? _transposedB;

        /// <summary>Bᵀ, [Σr, out], contiguous: what the CPU kernel reads, eight outputs of one rank at a time.</summary>
        public Tensor TransposedB => _transposedB ??= B.t().contiguous().DetachFromDisposeScope();

        /// <summary>(B, 1, Σr): each row's adapter segment holds that adapter's scaling, the rest zero. Reused while the
        /// caller passes the same row assignment (a decode loop does, step after step).</summary>
        public Tensor MaskFor(IReadOnlyList<LoraAdapter?> rows, Dictionary<LoraAdapter, LoraAdapter.ModuleWeights> adapters, Device device)
        {
            if (_mask is not null && ReferenceEquals(rows, _maskRows))
                return _mask;
            var mask = new float[rows.Count * Width];
            for (var r = 0; r < rows.Count; r++)
            {
                if (rows[r] is not { } adapter || !Segments.TryGetValue(adapter, out var segment)) continue;
                mask.AsSpan(r * Width + segment.Start, segment.Rank).Fill((float)adapters[adapter].Scaling);
            }
            _mask?.Dispose();
            _mask = tensor(mask, [rows.Count, 1, Width], device: device).DetachFromDisposeScope();
            _maskRows = rows;
            return _mask;
        }

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
            _mask?.Dispose();
            _transposedB?.Dispose();
        }
    }
}
