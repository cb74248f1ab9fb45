using ParaphraseService.Model.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// A Linear whose weight is stored as int8 with one fp32 scale per output row (W ≈ diag(s)·q); the bias stays in full
/// precision. On a CPU with AVX2 it multiplies with our own kernel (<see cref="Avx2Int8Kernel"/>) on the int8 matrix
/// itself; with fbgemm's int8 GEMM it keeps only fbgemm's packed weight; elsewhere (and when asked) it dequantizes the
/// weight for each call, the scheme of the original 8-bit GPT-J.
/// </summary>
public sealed class Int8Linear : nn.Module<Tensor, Tensor>, IQuantizedWeightLayer
{
    private readonly long _in;
    private readonly long _out;
    private readonly Int8Options _options;
    // Tensors live in a holder, not in Tensor fields: a parent registering this module would otherwise register them
    // as buffers, and Module.to() would try to move fbgemm's packed matrix.
    private Weights? _weights;
    // fbgemm's packed weight cannot be read back: for gradients the layer needs its int8 matrix too, kept from loading
    // (Int8Options.KeepWeightForTraining) or attached while a fine-tune runs (Int8TrainingMatrices).
    private Tensor? _trainingQ;

    public Int8Linear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Int8Options options) : base(nameof(Int8Linear))
    {
        if (options.OutlierFactor is { } factor && !(factor > 0))
            throw new ArgumentOutOfRangeException(nameof(options), options.OutlierFactor, "Int8Options.OutlierFactor must be above 0 (infinity turns the outlier pass off).");
        (_in, _out, _options) = (inFeatures, outFeatures, options);
        if (hasBias)
            register_parameter(nameof(bias), new Parameter(empty(outFeatures, dtype, device("meta")), requires_grad: false));
    }

    public long[] WeightShape => [_out, _in];

    /// <summary>
    /// Bits the fbgemm kernel quantizes activations in on this CPU: 8, or 7 where its kernel adds pairs of products in
    /// saturating 16-bit lanes (AVX2 and AVX-512 without VNNI; PyTorch's reduce_range).
    /// </summary>
    public static int FbgemmActivationBits => FbgemmKernels.PairsSaturate ? 7 : 8;

    public long WeightBytes => (_weights?.Bytes ?? 0) + (_trainingQ?.NumberOfElements ?? 0);

    /// <summary>The kernel in use once a weight is loaded.</summary>
    public Int8Kernel Kernel => _weights?.Kernel ?? Int8Kernel.Auto;

    /// <summary>The kernel in words, for logs and benchmarks: with the AVX2 kernel, whether the AVX512-VNNI sums run.</summary>
    public string Compute => Kernel == Int8Kernel.Avx2 ? Avx2Int8Kernel.Description : Kernel.ToString().ToLowerInvariant();

    public Parameter? bias
    {
        get => get_parameter(nameof(bias));
        set => ConditionallyRegisterParameter(nameof(bias), value);
    }

    public void LoadWeight(Tensor weight, Device device)
    {
        var (q, scale) = RowwiseInt8.Quantize(weight, device);
        LoadQuantizedWeight(q, scale, device);
        q.Dispose();
        scale.Dispose();
    }

    public void LoadQuantizedWeight(Tensor q, Tensor scale, Device device)
    {
        if (!q.shape.SequenceEqual(WeightShape) || q.dtype != ScalarType.Int8 || !scale.shape.SequenceEqual([_out]))
            throw new ArgumentException($"Int8Linear [{_out}, {_in}] got weight {q.dtype} [{string.Join(", ", q.shape)}] and scale [{string.Join(", ", scale.shape)}].");
        _weights?.Dispose();
        ReleaseTrainingMatrix();
        var kernel = ChooseKernel(q, device);
        _weights = kernel switch
        {
            Int8Kernel.Avx2 => Weights.ForAvx2(q, scale),
            Int8Kernel.Fbgemm => Weights.ForFbgemm(q, scale, device, float.IsFinite(_options.OutlierFactorFor(kernel))),
            _ => Weights.ForDequantize(q, scale, device),
        };
        if (kernel == Int8Kernel.Fbgemm && _options.KeepWeightForTraining)
            AttachTrainingMatrix(q);
    }

    private Int8Kernel ChooseKernel(Tensor q, Device device)
    {
        if (_options.Kernel is Int8Kernel.Fbgemm or Int8Kernel.Avx2 && device.type != DeviceType.CPU)
            throw new NotSupportedException($"The {_options.Kernel} int8 kernel runs on the CPU only.");
        var avx2 = Avx2Int8Kernel.IsSupported && _in <= Avx2Int8Kernel.MaxInFeatures;
        if (_options.Kernel == Int8Kernel.Avx2 && !avx2)
            throw new NotSupportedException(Avx2Int8Kernel.IsSupported
                ? $"The AVX2 int8 kernel takes at most {Avx2Int8Kernel.MaxInFeatures} input features; this layer has {_in}: use the fbgemm kernel."
                : "This CPU has no AVX2: use the fbgemm or the dequantize int8 kernel.");
        return _options.Kernel switch
        {
            Int8Kernel.Auto when device.type != DeviceType.CPU => Int8Kernel.Dequantize,
            Int8Kernel.Auto => avx2 ? Int8Kernel.Avx2 : Int8Kernel.Fbgemm,
            var chosen => chosen,
        };
    }

    /// <summary>
    /// The weight as int8 values and row scales: kept by the dequantize and AVX2 kernels, and by fbgemm only when asked
    /// (<see cref="Int8Options.KeepWeightForTraining"/>); otherwise fbgemm keeps just its packed form.
    /// </summary>
    public (Tensor Q, Tensor Scale) QuantizedWeight() => _weights is { } w && (w.Q ?? _trainingQ) is { } q
        ? (q, w.Scale)
        : throw new InvalidOperationException(
            "This int8 layer keeps only fbgemm's packed weight, so gradients cannot pass through it: load the model with " +
            "Int8Options.KeepWeightForTraining, attach it (Int8TrainingMatrices, as the service does for a fine-tune) or use the dequantize kernel.");

    /// <summary>Whether gradients can flow back through this layer.</summary>
    public bool SupportsTraining => _weights?.Q is not null || _trainingQ is not null;

    /// <summary>
    /// Gives an fbgemm layer its int8 matrix back (as quantized at load: same values, so the same gradients), for as
    /// long as a fine-tune runs. The dequantize kernel has it anyway.
    /// </summary>
    public void AttachTrainingMatrix(Tensor q)
    {
        if (_weights is not { Kernel: Int8Kernel.Fbgemm }) return;
        if (!q.shape.SequenceEqual(WeightShape) || q.dtype != ScalarType.Int8)
            throw new ArgumentException($"Int8Linear [{_out}, {_in}] got a training matrix {q.dtype} [{string.Join(", ", q.shape)}].");
        _trainingQ?.Dispose();
        _trainingQ = q.to(CPU, copy: true).DetachFromDisposeScope();
    }

    /// <summary>Frees the matrix attached for training (one byte per weight); false when there was none.</summary>
    public bool ReleaseTrainingMatrix()
    {
        if (_trainingQ is null) return false;
        _trainingQ.Dispose();
        _trainingQ = null;
        return true;
    }

    public override Tensor forward(Tensor x)
    {
        // The weight is frozen; only the input may need a gradient (towards LoRA adapters of earlier layers).
        if (x.requires_grad && is_grad_enabled())
        {
            // Checked here: an exception thrown inside the backward pass would cross native code and end the process.
            _ = QuantizedWeight();
            return Int8LinearFunction.apply(x, this);
        }
        return ForwardWithoutGraph(x);
    }

    internal Tensor ForwardWithoutGraph(Tensor x)
    {
        var w = _weights ?? throw new InvalidOperationException("Int8Linear has no weight loaded.");
        using var scope = NewDisposeScope();
        var b = bias;
        Tensor y;
        if (w.Kernel == Int8Kernel.Dequantize)
        {
            y = nn.functional.linear(x, RowwiseInt8.Dequantize(w.Q!, w.Scale, x.dtype), b?.to(x.dtype));
        }
        else if (w.Kernel == Int8Kernel.Avx2)
        {
            y = Avx2Product(x, w, b);
        }
        else
        {
            // y = (x · qᵀ) ⊙ s + b, with x · qᵀ from fbgemm at unit weight scale
            var product = FbgemmProduct(x.to(ScalarType.Float32), w);
            y = b is null ? product * w.Scale : torch.addcmul(b.to(ScalarType.Float32), product, w.Scale, 1);
            y = y.to(x.dtype);
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// (x · qᵀ) ⊙ s + b from <see cref="Avx2Int8Kernel"/>. A decode step makes dozens of these calls, so the common case
    /// (fp32, contiguous) allocates the output and runs no other LibTorch op.
    /// </summary>
    private unsafe Tensor Avx2Product(Tensor x, Weights w, Tensor? b)
    {
        using var scope = NewDisposeScope();
        var shape = TensorMemory.ShapeWithLast(x, _out);
        var rows = x.dtype == ScalarType.Float32 && x.is_contiguous() ? x : x.to(ScalarType.Float32).contiguous();
        var bias = b is null || b.dtype == ScalarType.Float32 && b.is_contiguous() ? b : b.to(ScalarType.Float32).contiguous();
        var y = empty(shape, ScalarType.Float32);
        Avx2Int8Kernel.Multiply(TensorMemory.Floats(rows), (int)(rows.numel() / _in), (int)_in, TensorMemory.Bytes(w.Q!), TensorMemory.Floats(w.Scale),
            bias is null ? null : TensorMemory.Floats(bias), (int)_out, _options.OutlierFactorFor(Int8Kernel.Avx2), TensorMemory.Floats(y), torch.get_num_threads());
        return (x.dtype == ScalarType.Float32 ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>x · qᵀ at unit weight scale: activations coded row by row (<see cref="ActivationCodes"/>), the integer
    /// product from fbgemm, outliers exact.</summary>
    private unsafe Tensor FbgemmProduct(Tensor x, Weights w)
    {
        using var scope = NewDisposeScope();
        var rows = x.reshape(-1, _in).contiguous(); // (N, in)
        var n = (int)rows.size(0);
        var codes = FbgemmKernels.CodesWithPinRow(n, (int)_in); // (N + 1, in)
        var (steps, zeroPoints) = (new float[n], new float[n]);
        var outliers = new List<ActivationCodes.Outlier>();
        ActivationCodes.Quantize(TensorMemory.Floats(rows), n, (int)_in, TensorMemory.Floats(codes), FbgemmKernels.MaxCode,
            w.OutlierColumns is null ? float.PositiveInfinity : _options.OutlierFactorFor(Int8Kernel.Fbgemm), steps, zeroPoints, outliers);
        var product = FbgemmKernels.IntegerProduct(codes, w.ShapeView!, w.Packed!, w.ColOffsets!, w.ZeroBias!).contiguous();
        ActivationCodes.Finish(TensorMemory.Floats(product), n, (int)_out, steps, zeroPoints, TensorMemory.Floats(w.RowSums!),
            w.OutlierColumns is null ? null : TensorMemory.Bytes(w.OutlierColumns), outliers);
        var shape = TensorMemory.ShapeWithLast(x, _out);
        return product.narrow(0, 0, n).reshape(shape).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _weights?.Dispose();
            _trainingQ?.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>What one kernel needs, owned by the layer.</summary>
    private sealed class Weights : IDisposable
    {
        public required Int8Kernel Kernel { get; init; }
        public required Tensor Scale { get; init; }
        public Tensor? Q { get; init; }
        public Tensor? Packed { get; init; }
        public Tensor? ColOffsets { get; init; }
        public Tensor? ShapeView { get; init; }
        public Tensor? ZeroBias { get; init; }
        public Tensor? RowSums { get; init; }
        // qᵀ (in, out) int8: the weight's columns, for the activations multiplied exactly (Int8Options.OutlierFactor)
        public Tensor? OutlierColumns { get; init; }

        // The packed matrix is an opaque handle whose numel says nothing of its size; it holds one byte per weight.
        public long Bytes => Scale.NumberOfElements * 4 + (Q?.NumberOfElements ?? 0) + (ColOffsets?.NumberOfElements ?? 0) * 8 + (OutlierColumns?.NumberOfElements ?? 0)
            + (Packed is null ? 0 : ShapeView!.shape[0] * ShapeView.shape[1]);

        public static Weights ForDequantize(Tensor q, Tensor scale, Device device) => new()
        {
            Kernel = Int8Kernel.Dequantize,
            Q = q.to(device).DetachFromDisposeScope(),
            Scale = scale.to(ScalarType.Float32, device).DetachFromDisposeScope(),
        };

        public static Weights ForAvx2(Tensor q, Tensor scale)
        {
            // Handles on the caller's tensors where they are already CPU and contiguous (a tied head shares the
            // embedding's table this way); the intermediate handles go with the scope: left to the finalizer, they kept
            // each layer's loading copy alive, and GPT-J-6B peaked at twice its int8 size.
            using var scope = NewDisposeScope();
            return new Weights
            {
                Kernel = Int8Kernel.Avx2,
                Q = q.to(CPU).contiguous().alias().DetachFromDisposeScope(),
                Scale = scale.to(ScalarType.Float32, CPU).contiguous().alias().DetachFromDisposeScope(),
            };
        }

        public static Weights ForFbgemm(Tensor q, Tensor scale, Device device, bool exactOutliers)
        {
            using var cpu = q.to(CPU);
            return new Weights
            {
                Kernel = Int8Kernel.Fbgemm,
                Packed = FbgemmKernels.Pack(cpu).DetachFromDisposeScope(),
                ColOffsets = cpu.sum([1], type: ScalarType.Int32).DetachFromDisposeScope(),
                // fbgemm checks the weight's sizes only: a broadcast scalar stands in for the 1-byte-per-weight matrix.
                ShapeView = zeros(1, 1, ScalarType.Int8).expand(cpu.shape[0], cpu.shape[1]).DetachFromDisposeScope(),
                ZeroBias = zeros(cpu.shape[0]).DetachFromDisposeScope(),
                // Σ_i q[o, i] as fp32: what a row's offset (its minimum) contributes to each output
                RowSums = cpu.sum([1], type: ScalarType.Float32).DetachFromDisposeScope(),
                Scale = scale.to(ScalarType.Float32, CPU).DetachFromDisposeScope(),
                OutlierColumns = exactOutliers ? cpu.t().contiguous().DetachFromDisposeScope() : null,
            };
        }

        public void Dispose()
        {
            foreach (var t in new[] { Scale, Q, Packed, ColOffsets, ShapeView, ZeroBias, RowSums, OutlierColumns }) t?.Dispose();
        }
    }
}
