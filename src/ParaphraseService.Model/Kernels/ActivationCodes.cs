using System.Numerics;
using System.Runtime.Intrinsics;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// The activation side of the fbgemm int8 product, row by row, in one pass over memory instead of a dozen LibTorch ops
/// per layer. Each row is quantized over its own range (LLM.int8()'s vector-wise scales) in K + 1 levels with an
/// integer zero point, so 0 stays exactly 0: x ≈ a·(u − z), u = clamp(round(x / a) + z, 0, K),
/// a = (max(x, 0) − min(x, 0)) / K, z = round(−min(x, 0) / a). The range is clipped at <c>outlierFactor</c> times the
/// row's mean magnitude, and the values beyond it (which would stretch it and round every ordinary value coarsely) are
/// multiplied exactly against the weight's columns. What one row holds never changes how another is computed.
/// </summary>
internal static unsafe class ActivationCodes
{
    /// <summary>One value multiplied exactly: x[row, column] = value.</summary>
    public readonly record struct Outlier(int Row, int Column, float Value);

    /// <summary>
    /// Writes the codes of <paramref name="rows"/> rows of <paramref name="x"/> (rows × k) into <paramref name="codes"/>
    /// (same shape, fp32 holding integers in [0, maxCode]) and each row's step and zero point; outliers are coded as
    /// their row's zero point (value 0) and listed. A row holding NaN or ±∞ gets a NaN step, so its outputs are NaN.
    /// </summary>
    public static void Quantize(float* x, int rows, int k, float* codes, int maxCode, float outlierFactor,
        Span<float> steps, Span<float> zeroPoints, List<Outlier> outliers)
    {
        var levels = (float)maxCode;
        for (var r = 0; r < rows; r++)
        {
            var row = new ReadOnlySpan<float>(x + (long)r * k, k);
            var output = new Span<float>(codes + (long)r * k, k);
            var meanAbs = SumOfMagnitudes(row) / k;
            if (!float.IsFinite(meanAbs))
            {
                output.Clear();
                (steps[r], zeroPoints[r]) = (float.NaN, 0);
                continue;
            }
            // ∞ · 0 is NaN, and nothing compares greater than NaN: an all-zero row or an infinite factor has no outliers.
            var threshold = outlierFactor * meanAbs;
            var (low, high) = ClippedRange(row, r, threshold, outliers);
            var step = (high - low) / levels;
            if (step == 0) step = 1; // every kept value is 0: any step codes it as z = 0
            var zero = Math.Clamp(MathF.Round(-low / step), 0, levels);
            WriteCodes(row, output, threshold, step, zero, levels);
            (steps[r], zeroPoints[r]) = (step, zero);
        }
    }

    /// <summary>
    /// Turns fbgemm's integer products into x · qᵀ in place: product[r] = a_r·(u_r · qᵀ − z_r·Σ_i q[:, i]) plus, for each
    /// outlier, value · q[:, column] (read as a row of the transposed weight <paramref name="qT"/>, k × outputs).
    /// </summary>
    public static void Finish(float* product, int rows, int outputs, ReadOnlySpan<float> steps, ReadOnlySpan<float> zeroPoints,
        float* rowSums, sbyte* qT, List<Outlier> outliers)
    {
        var sums = new ReadOnlySpan<float>(rowSums, outputs);
        for (var r = 0; r < rows; r++)
        {
            var y = new Span<float>(product + (long)r * outputs, outputs);
            // a ⊙ (u · qᵀ − z ⊙ Σ_i q[:, i])
            var (step, zero) = (steps[r], zeroPoints[r]);
            var i = 0;
            var (a, az) = (new Vector<float>(step), new Vector<float>(step * zero));
            for (; i <= outputs - Vector<float>.Count; i += Vector<float>.Count)
                (new Vector<float>(y[i..]) * a - new Vector<float>(sums[i..]) * az).CopyTo(y[i..]);
            for (; i < outputs; i++)
                y[i] = y[i] * step - sums[i] * step * zero;
        }
        if (outliers.Count == 0) return;
        // Split by output columns so each thread owns its part of every row; worth a thread hop only when large.
        var parts = (long)outliers.Count * outputs >= ParallelWork ? Math.Min(Environment.ProcessorCount, outputs / 64) : 1;
        var (memory, columns) = ((IntPtr)product, (IntPtr)qT);
        void Part(int part)
        {
            var start = (int)((long)outputs * part / parts / 32 * 32);
            var end = part == parts - 1 ? outputs : (int)((long)outputs * (part + 1) / parts / 32 * 32);
            foreach (var (row, column, value) in outliers)
                AddScaledColumn((float*)memory + (long)row * outputs + start, (sbyte*)columns + (long)column * outputs + start, value, end - start);
        }
        if (parts <= 1) Part(0);
        else Parallel.For(0, parts, Part);
    }

    // Multiply-adds in the outlier pass above which it is split across threads (about 0.1 ms on one core).
    private const long ParallelWork = 1 << 20;

    // min(x, 0) and max(x, 0) over the values clipped to ±threshold; the values beyond it are listed as outliers. Clipped
    // rather than left out, so the range moves continuously as a value crosses the threshold: leaving it out would let
    // the range jump to the next largest value, and a rounding-level difference in one input (a batch of another
    // shape, a speculative step) would change every code of the row.
    private static (float Low, float High) ClippedRange(ReadOnlySpan<float> row, int r, float threshold, List<Outlier> outliers)
    {
        var i = 0;
        var (low, high) = (Vector256<float>.Zero, Vector256<float>.Zero);
        var (upper, lower) = (Vector256.Create(threshold), Vector256.Create(-threshold));
        for (; i <= row.Length - 8; i += 8)
        {
            var v = Vector256.Create(row.Slice(i, 8));
            if (Vector256.GreaterThan(Vector256.Abs(v), upper) != Vector256<float>.Zero)
            {
                for (var lane = 0; lane < 8; lane++)
                    if (MathF.Abs(row[i + lane]) > threshold) outliers.Add(new Outlier(r, i + lane, row[i + lane]));
                v = Vector256.Min(Vector256.Max(v, lower), upper);
            }
            (low, high) = (Vector256.Min(low, v), Vector256.Max(high, v));
        }
        float lo = 0, hi = 0;
        for (var lane = 0; lane < 8; lane++)
            (lo, hi) = (MathF.Min(lo, low[lane]), MathF.Max(hi, high[lane]));
        for (; i < row.Length; i++)
        {
            var v = row[i];
            if (MathF.Abs(v) > threshold)
            {
                outliers.Add(new Outlier(r, i, v));
                v = Math.Clamp(v, -threshold, threshold);
            }
            (lo, hi) = (MathF.Min(lo, v), MathF.Max(hi, v));
        }
        return (lo, hi);
    }

    // u = clamp(round(x / a) + z, 0, K); an outlier is coded z (value 0): its product is added exactly afterwards
    private static void WriteCodes(ReadOnlySpan<float> row, Span<float> output, float threshold, float step, float zero, float levels)
    {
        var i = 0;
        var (limit, a, z, top) = (Vector256.Create(threshold), Vector256.Create(step), Vector256.Create(zero), Vector256.Create(levels));
        for (; i <= row.Length - 8; i += 8)
        {
            var v = Vector256.Create(row.Slice(i, 8));
            var code = Vector256.Min(Vector256.Max(Vector256.Round(v / a) + z, Vector256<float>.Zero), top);
            Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Abs(v), limit), z, code).CopyTo(output.Slice(i, 8));
        }
        for (; i < row.Length; i++)
            output[i] = MathF.Abs(row[i]) > threshold ? zero : Math.Clamp(MathF.Round(row[i] / step) + zero, 0, levels);
    }

    public static float SumOfMagnitudes(ReadOnlySpan<float> row)
    {
        var i = 0;
        var acc = Vector<float>.Zero;
        for (; i <= row.Length - Vector<float>.Count; i += Vector<float>.Count)
            acc += Vector.Abs(new Vector<float>(row[i..]));
        var sum = Vector.Sum(acc);
        for (; i < row.Length; i++)
            sum += MathF.Abs(row[i]);
        return sum;
    }

    // y += value · column, the int8 column widened to fp32 eight at a time.
    private static void AddScaledColumn(float* y, sbyte* column, float value, int count)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var v = Vector256.Create(value);
            for (; i <= count - 32; i += 32)
            {
                var bytes = Vector256.Load(column + i);
                var (lo, hi) = Vector256.Widen(bytes);
                var (a, b) = Vector256.Widen(lo);
                var (c, d) = Vector256.Widen(hi);
                Accumulate(y + i, a, v);
                Accumulate(y + i + 8, b, v);
                Accumulate(y + i + 16, c, v);
                Accumulate(y + i + 24, d, v);
            }
        }
        for (; i < count; i++)
            y[i] += value * column[i];
    }

    private static void Accumulate(float* y, Vector256<int> column, Vector256<float> value) =>
        Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(column), value, Vector256.Load(y)), y);
}
