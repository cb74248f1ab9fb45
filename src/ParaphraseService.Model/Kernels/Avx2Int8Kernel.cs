using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// y = x · (diag(s)·q)ᵀ + b on the CPU in one pass over the int8 weight, for decode steps that are bound by reading it.
/// Each row of x is coded in 8 bits over its own symmetric range (x ≈ a·c, c in [−127, 127], a = range / 127), so a
/// product of a code and a weight is at most 127·128 and the sum of a pair fits a signed 16-bit lane:
/// <c>vpmaddubsw(|q|, sign(c, q))</c> (the weight's sign moved to the code, so −128 is read as 128) never saturates,
/// which is what forces fbgemm down to 7-bit codes on CPUs without VNNI. The range is clipped at <c>outlierFactor</c>
/// times the row's mean magnitude, and the values beyond it are multiplied exactly against the weight row being read
/// (already in cache), so they need no second copy of the weight. Integer sums are exact and each row's arithmetic is the same alone or in a
/// batch, whatever the number of threads. Where the CPU has AVX512-VNNI, the integer sums come from
/// <see cref="NativeInt8Sums"/> instead: the same integers in a third of the instructions.
/// </summary>
internal static unsafe class Avx2Int8Kernel
{
    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Avx2.IsSupported;

    /// <summary>The kernel in words, saying whether the AVX512-VNNI sums run here.</summary>
    public static string Description => NativeInt8Sums.IsSupported ? "avx2, AVX512-VNNI sums" : "avx2";

    /// <summary>The widest input a row's int32 sum holds without overflow (127·128 per product).</summary>
    public const int MaxInFeatures = int.MaxValue / (127 * 128);

    private const int MaxCode = 127;

    // Bytes ahead of the weight being read that are asked for early: one core alone does not keep enough reads in
    // flight to stream DRAM at full speed. A row alone asks for them into L2 (prefetcht1), not L1: its weight is read
    // once, and bench-250m's 73 products then streamed at 34-35 GB/s as the fp32 pass does, against 30-32 into L1
    // (harness, alternating in one process: typically 5.6-6.0 against 6.0-6.8 ms a step, faster in 16 of 18 rounds).
    private const int PrefetchDistance = 1024;

    // Multiply-adds below which one thread does the whole product: a thread hop costs about as much as 64K of them.
    private const long ParallelWork = 1 << 16;

    // Bytes of activation codes per block of rows, kept in L2 while every weight row of a part passes over it.
    private const int RowBlockBytes = 128 << 10;

    // Integer sums one call of the native sums may hand back (256 KB): a few rows get the whole part at once, so its
    // weight is read in four long streams; many rows (a prompt) get at least 64 outputs a call.
    private const int NativeSums = 64 << 10;
    private const int NativeMinOutputs = 64;

    /// <summary>
    /// y (rows × outputs) from x (rows × k, fp32), the int8 weight q (outputs × k, row-major), its row scales and an
    /// optional bias. A row holding NaN or ±∞ gives NaN outputs.
    /// </summary>
    // The native sums run for any number of rows where they load. One row is bound by reading the weight; there they
    // were once no faster (bench-250m's 48 layer products alone: 0.92-0.97x), but since their results are stored eight
    // at a time a whole decode step is (bench-250m int8 at batch 1, alternating in one process: a median 1.05-1.06x
    // over 24 rounds, faster in 18). From two rows they always were: two rows 1.2-1.3x, four 1.15-1.26x, eight
    // 1.15-1.85x, sixteen 1.5-1.85x.
    public static void Multiply(float* x, int rows, int k, sbyte* q, float* scale, float* bias, int outputs, float outlierFactor, float* y, int threads) =>
        Multiply(x, rows, k, q, scale, bias, outputs, outlierFactor, y, threads, NativeInt8Sums.IsSupported);

    /// <param name="vnni">Integer sums from <see cref="NativeInt8Sums"/> (which must be supported) rather than managed code.</param>
    internal static void Multiply(float* x, int rows, int k, sbyte* q, float* scale, float* bias, int outputs, float outlierFactor, float* y, int threads, bool vnni)
    {
        if (k > MaxInFeatures)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"The int8 AVX2 kernel takes at most {MaxInFeatures} input features.");
        using var codes = new ActivationBlock(rows, k, interleaved: !vnni);
        var rowCodes = ArrayPool<sbyte>.Shared.Rent(k);
        try
        {
            fixed (sbyte* row = rowCodes)
                for (var r = 0; r < rows; r++)
                {
                    codes.OutlierStart[r] = codes.OutlierColumns.Count;
                    codes.Steps[r] = Quantize(x + (long)r * k, k, outlierFactor, row, codes.OutlierColumns, codes.OutlierValues);
                    codes.Store(r, row);
                }
        }
        finally
        {
            ArrayPool<sbyte>.Shared.Return(rowCodes);
        }
        codes.OutlierStart[rows] = codes.OutlierColumns.Count;
        var product = new Product(codes, q, scale, bias, outputs, y);
        // Pieces of whole output columns, a few per thread: a thread that starts late takes fewer.
        var parts = (long)rows * k * outputs < ParallelWork ? 1 : Math.Clamp(threads * 4, 1, Math.Max(1, outputs / 8));
        KernelThreads.Run(parts, threads, part => product.Run((int)((long)outputs * part / parts), (int)((long)outputs * (part + 1) / parts)));
    }

    // c = clamp(round(x / a), −127, 127) with a = min(max|x|, t) / 127 and t = outlierFactor · mean|x|; a value beyond t
    // is coded 0 and listed, to be multiplied exactly. Returns a (NaN for a row holding NaN or ±∞).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Quantize(float* x, int k, float outlierFactor, sbyte* codes, List<int> outlierColumns, List<float> outlierValues)
    {
        var values = new ReadOnlySpan<float>(x, k);
        var meanAbs = ActivationCodes.SumOfMagnitudes(values) / k;
        if (!float.IsFinite(meanAbs))
        {
            new Span<sbyte>(codes, k).Clear();
            return float.NaN;
        }
        // ∞ · 0 is NaN, and nothing compares greater than NaN: an all-zero row or an infinite factor has no outliers.
        var threshold = outlierFactor * meanAbs;
        var listed = outlierColumns.Count;
        var range = KeptRange(x, k, threshold, outlierColumns, outlierValues);
        // Clipped rather than left out: the range moves continuously as a value crosses the threshold.
        if (outlierColumns.Count > listed)
            range = threshold;
        var step = range == 0 ? 1 : range / MaxCode;
        var inverse = 1 / step;
        var j = 0;
        var (limit, top, bottom, by) = (Vector256.Create(threshold), Vector256.Create((float)MaxCode), Vector256.Create((float)-MaxCode), Vector256.Create(inverse));
        for (; j <= k - 32; j += 32)
        {
            var (a, b, c, d) = (Code(x + j), Code(x + j + 8), Code(x + j + 16), Code(x + j + 24));
            Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d)).Store(codes + j);
        }
        for (; j < k; j++)
            codes[j] = MathF.Abs(x[j]) > threshold ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(x[j] * inverse), -MaxCode, MaxCode);
        return step;

        Vector256<int> Code(float* v)
        {
            var value = Vector256.Load(v);
            var code = Vector256.Min(Vector256.Max(Vector256.Round(value * by), bottom), top);
            // already a whole number in [−127, 127]: truncating converts it exactly, without the saturating fix-ups of ConvertToInt32
            return Avx.ConvertToVector256Int32WithTruncation(Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Abs(value), limit), Vector256<float>.Zero, code));
        }
    }

    // The largest magnitude not beyond the threshold; the columns (in order) and values beyond it are listed in the same
    // pass. Eight compared at a time, and only the values beyond visited: a branch per value cost more than the rest of
    // quantizing the row (3 ns a value; bench-250m's products at batch 8 spent 1.7 ms a step quantizing, 0.6 this way).
    // The values are finite.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float KeptRange(float* x, int k, float threshold, List<int> columns, List<float> values)
    {
        var limit = Vector256.Create(threshold);
        var kept = Vector256<float>.Zero;
        var i = 0;
        for (; i <= k - 8; i += 8)
        {
            var magnitude = Vector256.Abs(Vector256.Load(x + i));
            var over = Vector256.GreaterThan(magnitude, limit);
            kept = Vector256.Max(kept, Vector256.AndNot(magnitude, over));
            for (var beyond = over.ExtractMostSignificantBits(); beyond != 0; beyond &= beyond - 1)
            {
                var column = i + BitOperations.TrailingZeroCount(beyond);
                columns.Add(column);
                values.Add(x[column]);
            }
        }
        var range = 0f;
        for (var n = 0; n < Vector256<float>.Count; n++)
            range = MathF.Max(range, kept.GetElement(n));
        for (; i < k; i++)
        {
            var magnitude = MathF.Abs(x[i]);
            if (magnitude > threshold)
            {
                columns.Add(i);
                values.Add(x[i]);
            }
            else
                range = MathF.Max(range, magnitude);
        }
        return range;
    }

    /// <summary>
    /// The activation codes of one product. Interleaved for the managed sums: rows in groups of four (then single rows),
    /// and within a group, for each 32 columns, the four rows' 32 codes one after the other, so one pointer and constant
    /// offsets reach every operand of a step; columns past the last multiple of 32 are kept apart. Otherwise row after
    /// row, as <see cref="NativeInt8Sums"/> reads them.
    /// </summary>
    private sealed class ActivationBlock : IDisposable
    {
        public ActivationBlock(int rows, int k, bool interleaved)
        {
            (Rows, K, Interleaved) = (rows, k, interleaved);
            (Chunks, Tail) = interleaved ? (k / 32, k % 32) : (0, 0);
            Groups = interleaved ? rows / 4 : 0;
            Steps = new float[rows];
            OutlierStart = new int[rows + 1];
            Packed = (sbyte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, (long)rows * k), 64);
            TailCodes = (sbyte*)NativeMemory.Alloc((nuint)Math.Max(1, rows * Tail));
        }

        public int Rows { get; }
        public int K { get; }
        public bool Interleaved { get; }
        public int Chunks { get; }
        public int Tail { get; }
        /// <summary>Groups of four rows; the rows after them are single.</summary>
        public int Groups { get; }
        public float[] Steps { get; }
        /// <summary>Row r's outliers are entries OutlierStart[r] to OutlierStart[r + 1] of the two lists.</summary>
        public int[] OutlierStart { get; }
        public List<int> OutlierColumns { get; } = [];
        public List<float> OutlierValues { get; } = [];
        public sbyte* Packed { get; }
        public sbyte* TailCodes { get; }

        /// <summary>Where row <paramref name="r"/>'s first 32 codes are, and the distance from one 32 to the next.</summary>
        public (long Offset, int Stride) Place(int r) => r < Groups * 4
            ? ((long)(r / 4) * Chunks * 128 + r % 4 * 32, 128)
            : ((long)Groups * Chunks * 128 + (long)(r - Groups * 4) * Chunks * 32, 32);

        public void Store(int r, sbyte* codes)
        {
            if (!Interleaved)
            {
                new ReadOnlySpan<sbyte>(codes, K).CopyTo(new Span<sbyte>(Packed + (long)r * K, K));
                return;
            }
            var (offset, stride) = Place(r);
            for (var j = 0; j < Chunks; j++)
                Vector256.Load(codes + j * 32).Store(Packed + offset + (long)j * stride);
            new ReadOnlySpan<sbyte>(codes + Chunks * 32, Tail).CopyTo(new Span<sbyte>(TailCodes + (long)r * Tail, Tail));
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(Packed);
            NativeMemory.Free(TailCodes);
        }
    }

    /// <summary>One product's operands; <see cref="Run"/> computes a range of output columns for every row.</summary>
    private sealed class Product(ActivationBlock codes, sbyte* q, float* scale, float* bias, int outputs, float* y)
    {
        private readonly int[] _columns = [.. codes.OutlierColumns];
        private readonly float[] _values = [.. codes.OutlierValues];

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            fixed (int* columns = _columns)
            fixed (float* values = _values)
                Run(start, end, columns, values);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Run(int start, int end, int* columns, float* values)
        {
            if (!codes.Interleaved)
            {
                RunNative(start, end, columns, values);
                return;
            }
            var (k, chunks, tail) = (codes.K, codes.Chunks, codes.Tail);
            // Groups of rows whose codes stay in L2 while every weight row of the part passes over them.
            var groupsPerBlock = Math.Max(1, RowBlockBytes / Math.Max(1, 4 * k));
            for (var first = 0; first < codes.Groups; first += groupsPerBlock)
            {
                var last = Math.Min(codes.Groups, first + groupsPerBlock);
                for (var o = start; o < end; o++)
                {
                    var weights = q + (long)o * k;
                    for (var g = first; g < last; g++)
                    {
                        var r = g * 4;
                        var sums = Dot4(weights, codes.Packed + (long)g * chunks * 128, chunks);
                        Store(r, o, sums.GetElement(0) + TailDot(weights, r, k, tail), weights, columns, values);
                        Store(r + 1, o, sums.GetElement(1) + TailDot(weights, r + 1, k, tail), weights, columns, values);
                        Store(r + 2, o, sums.GetElement(2) + TailDot(weights, r + 2, k, tail), weights, columns, values);
                        Store(r + 3, o, sums.GetElement(3) + TailDot(weights, r + 3, k, tail), weights, columns, values);
                    }
                }
            }
            for (var r = codes.Groups * 4; r < codes.Rows; r++)
            {
                var packed = codes.Packed + codes.Place(r).Offset;
                // Four quarters of the part at once: four sequential streams from memory keep more reads in flight than
                // one (2 threads reading 1 stream each: 20-23 GB/s here, 4 each: 29).
                var quarter = (end - start) / 4;
                for (var i = 0; i < quarter; i++)
                {
                    var o = start + i;
                    var weights = q + (long)o * k;
                    var stride = (long)quarter * k;
                    var sums = DotRows4(weights, stride, packed, chunks);
                    Store(r, o, sums.GetElement(0) + TailDot(weights, r, k, tail), weights, columns, values);
                    Store(r, o + quarter, sums.GetElement(1) + TailDot(weights + stride, r, k, tail), weights + stride, columns, values);
                    Store(r, o + 2 * quarter, sums.GetElement(2) + TailDot(weights + 2 * stride, r, k, tail), weights + 2 * stride, columns, values);
                    Store(r, o + 3 * quarter, sums.GetElement(3) + TailDot(weights + 3 * stride, r, k, tail), weights + 3 * stride, columns, values);
                }
                for (var o = start + 4 * quarter; o < end; o++)
                {
                    var weights = q + (long)o * k;
                    Store(r, o, Dot(weights, packed, chunks) + TailDot(weights, r, k, tail), weights, columns, values);
                }
            }
        }

        // Rows in blocks whose codes stay in L2 (as above), against the part's outputs a few dozen at a time, so that their
        // integer sums fit a small buffer.
        private void RunNative(int start, int end, int* columns, float* values)
        {
            var (k, rows) = (codes.K, codes.Rows);
            var blockRows = Math.Clamp(RowBlockBytes / Math.Max(1, k), 1, rows);
            var width = Math.Clamp(NativeSums / blockRows, Math.Min(NativeMinOutputs, end - start), end - start);
            var buffer = ArrayPool<int>.Shared.Rent(blockRows * width);
            // Each output's outlier products, for rows that have outliers.
            var outlierBuffer = ArrayPool<float>.Shared.Rent(width);
            try
            {
                fixed (int* sums = buffer)
                fixed (float* exact = outlierBuffer)
                    for (var first = 0; first < rows; first += blockRows)
                    {
                        var count = Math.Min(blockRows, rows - first);
                        for (var o = start; o < end; o += width)
                        {
                            var outputs = Math.Min(width, end - o);
                            NativeInt8Sums.Sums(codes.Packed + (long)first * k, count, k, q + (long)o * k, outputs, sums);
                            for (var r = 0; r < count; r++)
                                StoreRow(first + r, o, outputs, sums + r * outputs, columns, values, exact);
                        }
                    }
            }
            finally
            {
                ArrayPool<int>.Shared.Return(buffer);
                ArrayPool<float>.Shared.Return(outlierBuffer);
            }
        }

        /// <summary>
        /// <see cref="Store"/> for <paramref name="count"/> consecutive outputs of row r from their integer sums, eight at a
        /// time: the same operations in the same order, so the same bits. One output at a time, they took a quarter of a
        /// 16-row decode step on bench-250m (perf: 25% of the samples, the native sums 34%).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void StoreRow(int r, int o, int count, int* sums, int* columns, float* values, float* exact)
        {
            var outliers = codes.OutlierStart[r] < codes.OutlierStart[r + 1];
            if (outliers)
                OutlierProducts(r, o, count, columns, values, exact);
            var step = Vector256.Create(codes.Steps[r]);
            var row = y + (long)r * outputs + o;
            var i = 0;
            for (; i + Vector256<float>.Count <= count; i += Vector256<float>.Count)
            {
                var outlierSums = outliers ? Vector256.Load(exact + i) : Vector256<float>.Zero;
                // scale[o] * (Steps[r] * sum + exact), then + bias[o]
                var value = Vector256.Load(scale + o + i) * (step * Vector256.ConvertToSingle(Vector256.Load(sums + i)) + outlierSums);
                (bias is null ? value : value + Vector256.Load(bias + o + i)).Store(row + i);
            }
            for (; i < count; i++)
                Store(r, o + i, sums[i], q + (long)(o + i) * codes.K, columns, values);
        }

        // y[r, o] = s[o] · (a_r · Σ_i c[r, i] q[o, i] + Σ_outliers x[r, j] q[o, j]) + b[o]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Store(int r, int o, int sum, sbyte* weights, int* columns, float* values)
        {
            var value = scale[o] * (codes.Steps[r] * sum + OutlierProducts(r, weights, columns, values));
            y[(long)r * outputs + o] = bias is null ? value : value + bias[o];
        }

        /// <summary>
        /// <see cref="OutlierProducts(int, sbyte*, int*, float*)"/> of row r for the count outputs from o, four outputs at
        /// once: each output's sum in the outliers' order, so the same bits, but four sums in flight, where one output at a
        /// time waits on each add before the next.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void OutlierProducts(int r, int o, int count, int* columns, float* values, float* exact)
        {
            var k = codes.K;
            var (first, last) = (codes.OutlierStart[r], codes.OutlierStart[r + 1]);
            var j = 0;
            for (; j + 4 <= count; j += 4)
            {
                var weights = q + (long)(o + j) * k;
                float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                for (var n = first; n < last; n++)
                {
                    var at = weights + columns[n];
                    var value = values[n];
                    (s0, s1) = (s0 + value * at[0], s1 + value * at[k]);
                    (s2, s3) = (s2 + value * at[2 * k], s3 + value * at[3 * k]);
                }
                (exact[j], exact[j + 1], exact[j + 2], exact[j + 3]) = (s0, s1, s2, s3);
            }
            for (; j < count; j++)
                exact[j] = OutlierProducts(r, q + (long)(o + j) * k, columns, values);
        }

        // Σ_outliers x[r, j] q[o, j] against the weight row of output o, in the outliers' order
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private float OutlierProducts(int r, sbyte* weights, int* columns, float* values)
        {
            var exact = 0f;
            for (int n = codes.OutlierStart[r], last = codes.OutlierStart[r + 1]; n < last; n++)
                exact += values[n] * weights[columns[n]];
            return exact;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private int TailDot(sbyte* weights, int r, int k, int tail)
        {
            var sum = 0;
            var c = codes.TailCodes + (long)r * tail;
            var w = weights + (k - tail);
            for (var i = 0; i < tail; i++)
                sum += c[i] * w[i];
            return sum;
        }

        // Σ c·q over the full 32s: vpmaddubsw(|q|, sign(c, q)) gives pairs of products in 16 bits (at most 2·127·128),
        // vpmaddwd with ones widens them to 32.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static int Dot(sbyte* weights, sbyte* packed, int chunks)
        {
            var ones = Vector256.Create((short)1);
            var (a0, a1) = (Vector256<int>.Zero, Vector256<int>.Zero);
            var j = 0;
            for (; j + 2 <= chunks; j += 2, packed += 64)
            {
                Sse.Prefetch1(weights + j * 32 + PrefetchDistance);
                var (w0, w1) = (Avx.LoadVector256(weights + j * 32), Avx.LoadVector256(weights + j * 32 + 32));
                a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(Avx.LoadVector256(packed), w0)), ones));
                a1 = Avx2.Add(a1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w1), Avx2.Sign(Avx.LoadVector256(packed + 32), w1)), ones));
            }
            if (j < chunks)
            {
                var w = Avx.LoadVector256(weights + j * 32);
                a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(Avx.LoadVector256(packed), w)), ones));
            }
            return Vector256.Sum(Avx2.Add(a0, a1));
        }

        // One row of codes against four weight rows, stride bytes apart: the sums Dot gives for each (integers: exact in
        // any order).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static Vector128<int> DotRows4(sbyte* weights, long stride, sbyte* packed, int chunks)
        {
            var ones = Vector256.Create((short)1);
            sbyte* w1 = weights + stride, w2 = weights + 2 * stride, w3 = weights + 3 * stride;
            Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (var j = 0; j < chunks; j++, packed += 32)
            {
                var offset = j * 32;
                if ((j & 1) == 0)
                {
                    Sse.Prefetch1(weights + offset + PrefetchDistance);
                    Sse.Prefetch1(w1 + offset + PrefetchDistance);
                    Sse.Prefetch1(w2 + offset + PrefetchDistance);
                    Sse.Prefetch1(w3 + offset + PrefetchDistance);
                }
                var c = Avx.LoadVector256(packed);
                var v0 = Avx.LoadVector256(weights + offset);
                var v1 = Avx.LoadVector256(w1 + offset);
                var v2 = Avx.LoadVector256(w2 + offset);
                var v3 = Avx.LoadVector256(w3 + offset);
                a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(v0), Avx2.Sign(c, v0)), ones));
                a1 = Avx2.Add(a1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(v1), Avx2.Sign(c, v1)), ones));
                a2 = Avx2.Add(a2, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(v2), Avx2.Sign(c, v2)), ones));
                a3 = Avx2.Add(a3, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(v3), Avx2.Sign(c, v3)), ones));
            }
            return Sum4(a0, a1, a2, a3);
        }

        // Four rows against one weight row: each weight vector is loaded, and its magnitude taken, once for all four.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static Vector128<int> Dot4(sbyte* weights, sbyte* packed, int chunks)
        {
            var ones = Vector256.Create((short)1);
            var (a0, a1, a2, a3) = (Vector256<int>.Zero, Vector256<int>.Zero, Vector256<int>.Zero, Vector256<int>.Zero);
            for (var j = 0; j < chunks; j++, packed += 128)
            {
                if ((j & 1) == 0) Sse.Prefetch0(weights + j * 32 + PrefetchDistance);
                var w = Avx.LoadVector256(weights + j * 32);
                var magnitude = Avx2.Abs(w);
                a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(packed), w)), ones));
                a1 = Avx2.Add(a1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(packed + 32), w)), ones));
                a2 = Avx2.Add(a2, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(packed + 64), w)), ones));
                a3 = Avx2.Add(a3, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(packed + 96), w)), ones));
            }
            return Sum4(a0, a1, a2, a3);
        }

        // The sums of a, b, c and d's lanes, as one vector, in three horizontal adds where four separate sums took five
        // instructions each (integers: exact in any order).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector128<int> Sum4(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d)
        {
            var sums = Avx2.HorizontalAdd(Avx2.HorizontalAdd(a, b), Avx2.HorizontalAdd(c, d));
            return sums.GetLower() + sums.GetUpper();
        }
    }
}
