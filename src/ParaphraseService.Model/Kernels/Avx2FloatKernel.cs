using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// y = x · Wᵀ + b for a few rows of fp32 activations on the CPU, in one pass over the fp32 weight: the decode step,
/// bound by reading the weight. LibTorch's GEMM for 1-16 rows streamed it at about 60% of what this loop does here
/// (README, decode speed). Four rows share each weight load; every row is computed the same way alone or in a batch.
/// </summary>
internal static unsafe class Avx2FloatKernel
{
    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Fma.IsSupported && Avx2.IsSupported;

    /// <summary>Rows above which LibTorch's blocked GEMM is faster (it reuses each weight across many more rows).</summary>
    public const int MaxRows = 32;

    // Multiply-adds below which one thread does the whole product.
    private const long ParallelWork = 1 << 16;

    // Bytes ahead of the weight being read that are asked for early (see Avx2Int8Kernel).
    private const int PrefetchDistance = 1024;

    /// <summary>y (rows × outputs) from x (rows × k), W (outputs × k, row-major) and an optional bias, all fp32 and contiguous.</summary>
    public static void Multiply(float* x, int rows, int k, float* w, float* bias, int outputs, float* y, int threads)
    {
        var product = new Product(x, rows, k, w, bias, outputs, y);
        var parts = (long)rows * k * outputs < ParallelWork ? 1 : Math.Clamp(threads * 4, 1, Math.Max(1, outputs / 8));
        KernelThreads.Run(parts, threads, part => product.Run((int)((long)outputs * part / parts), (int)((long)outputs * (part + 1) / parts)));
    }

    private sealed class Product(float* x, int rows, int k, float* w, float* bias, int outputs, float* y)
    {
        public void Run(int start, int end)
        {
            if (rows < 4)
                FewRows(start, end);
            else
                ManyRows(start, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        private void ManyRows(int start, int end)
        {
            // Two halves of the part at once: each load of four rows serves two weight rows (six loads per eight
            // multiply-adds instead of five per four), and two streams from memory per thread instead of one. The last
            // output of an odd part pairs with itself.
            var half = (end - start) / 2;
            for (var i = 0; i < end - start - half; i++)
            {
                var (o, partner) = i < half ? (start + i, half) : (end - 1, 0);
                var weights = w + (long)o * k;
                var (b0, b1) = bias is null ? (0f, 0f) : (bias[o], bias[o + partner]);
                var r = 0;
                for (; r + 4 <= rows; r += 4)
                {
                    var (first, second) = Dot4Pair(weights, (long)partner * k, x + (long)r * k, k);
                    for (var n = 0; n < 4; n++)
                    {
                        y[(long)(r + n) * outputs + o] = first[n] + b0;
                        y[(long)(r + n) * outputs + o + partner] = second[n] + b1;
                    }
                }
                for (; r < rows; r++)
                {
                    y[(long)r * outputs + o] = Dot(weights, x + (long)r * k, k) + b0;
                    y[(long)r * outputs + o + partner] = Dot(weights + (long)partner * k, x + (long)r * k, k) + b1;
                }
            }
        }

        // Four rows, k apart, against the weight rows at weights and weights + stride: each sum in the same order (one
        // accumulator over the 8-float blocks, then the tail), so a row gives the same bits in any group of four.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static (Vector128<float>, Vector128<float>) Dot4Pair(float* weights, long stride, float* rows, int k)
        {
            var other = weights + stride;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, c0 = default, c1 = default, c2 = default, c3 = default;
            var (r1, r2, r3) = (k, 2 * k, 3 * k);
            var i = 0;
            for (; i + 8 <= k; i += 8)
            {
                if ((i & 15) == 0)
                {
                    Sse.Prefetch0(weights + i + PrefetchDistance / sizeof(float));
                    Sse.Prefetch0(other + i + PrefetchDistance / sizeof(float));
                }
                var (v, u) = (Avx.LoadVector256(weights + i), Avx.LoadVector256(other + i));
                var x0 = Avx.LoadVector256(rows + i);
                a0 = Fma.MultiplyAdd(v, x0, a0);
                c0 = Fma.MultiplyAdd(u, x0, c0);
                var x1 = Avx.LoadVector256(rows + r1 + i);
                a1 = Fma.MultiplyAdd(v, x1, a1);
                c1 = Fma.MultiplyAdd(u, x1, c1);
                var x2 = Avx.LoadVector256(rows + r2 + i);
                a2 = Fma.MultiplyAdd(v, x2, a2);
                c2 = Fma.MultiplyAdd(u, x2, c2);
                var x3 = Avx.LoadVector256(rows + r3 + i);
                a3 = Fma.MultiplyAdd(v, x3, a3);
                c3 = Fma.MultiplyAdd(u, x3, c3);
            }
            var (s0, s1, s2, s3) = (Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3));
            var (t0, t1, t2, t3) = (Vector256.Sum(c0), Vector256.Sum(c1), Vector256.Sum(c2), Vector256.Sum(c3));
            for (; i < k; i++)
            {
                var (wi, ui) = (weights[i], other[i]);
                (s0, s1, s2, s3) = (s0 + wi * rows[i], s1 + wi * rows[r1 + i], s2 + wi * rows[r2 + i], s3 + wi * rows[r3 + i]);
                (t0, t1, t2, t3) = (t0 + ui * rows[i], t1 + ui * rows[r1 + i], t2 + ui * rows[r2 + i], t3 + ui * rows[r3 + i]);
            }
            return (Vector128.Create(s0, s1, s2, s3), Vector128.Create(t0, t1, t2, t3));
        }

        // Fewer than four rows (a decode step: one): four quarters of the part at once, four sequential streams from
        // memory per thread instead of one, which keeps more reads in flight (see Avx2Int8Kernel). Each sum as Dot's.
        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        private void FewRows(int start, int end)
        {
            var quarter = (end - start) / 4;
            var stride = (long)quarter * k;
            for (var i = 0; i < quarter; i++)
            {
                var o = start + i;
                var weights = w + (long)o * k;
                for (var r = 0; r < rows; r++)
                {
                    var (s0, s1, s2, s3) = DotRows4(weights, stride, x + (long)r * k, k);
                    var at = y + (long)r * outputs + o;
                    at[0] = s0 + (bias is null ? 0f : bias[o]);
                    at[quarter] = s1 + (bias is null ? 0f : bias[o + quarter]);
                    at[2 * quarter] = s2 + (bias is null ? 0f : bias[o + 2 * quarter]);
                    at[3 * quarter] = s3 + (bias is null ? 0f : bias[o + 3 * quarter]);
                }
            }
            for (var o = start + 4 * quarter; o < end; o++)
            {
                var b = bias is null ? 0f : bias[o];
                for (var r = 0; r < rows; r++)
                    y[(long)r * outputs + o] = Dot(w + (long)o * k, x + (long)r * k, k) + b;
            }
        }

        // Dot(weights + n·stride, row, k) for n = 0..3, each summed in Dot's order.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static (float, float, float, float) DotRows4(float* weights, long stride, float* row, int k)
        {
            float* w1 = weights + stride, w2 = weights + 2 * stride, w3 = weights + 3 * stride;
            Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            var i = 0;
            for (; i + 16 <= k; i += 16)
            {
                var ahead = i + PrefetchDistance / sizeof(float);
                Sse.Prefetch0(weights + ahead);
                Sse.Prefetch0(w1 + ahead);
                Sse.Prefetch0(w2 + ahead);
                Sse.Prefetch0(w3 + ahead);
                var (x0, x1) = (Avx.LoadVector256(row + i), Avx.LoadVector256(row + i + 8));
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), x0, a0);
                b0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i + 8), x1, b0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), x0, a1);
                b1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i + 8), x1, b1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), x0, a2);
                b2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i + 8), x1, b2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), x0, a3);
                b3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i + 8), x1, b3);
            }
            for (; i + 8 <= k; i += 8)
            {
                var x0 = Avx.LoadVector256(row + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), x0, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), x0, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), x0, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), x0, a3);
            }
            var (s0, s1, s2, s3) = (Vector256.Sum(a0 + b0), Vector256.Sum(a1 + b1), Vector256.Sum(a2 + b2), Vector256.Sum(a3 + b3));
            for (; i < k; i++)
                (s0, s1, s2, s3) = (s0 + weights[i] * row[i], s1 + w1[i] * row[i], s2 + w2[i] * row[i], s3 + w3[i] * row[i]);
            return (s0, s1, s2, s3);
        }
    }

    /// <summary>The dot product of k floats in one fixed order: two accumulators over 16-float blocks, then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot(float* weights, float* row, int k)
    {
        var (a0, a1) = (Vector256<float>.Zero, Vector256<float>.Zero);
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            Sse.Prefetch0(weights + i + PrefetchDistance / sizeof(float));
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), Avx.LoadVector256(row + i), a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i + 8), Avx.LoadVector256(row + i + 8), a1);
        }
        for (; i + 8 <= k; i += 8)
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), Avx.LoadVector256(row + i), a0);
        var sum = Vector256.Sum(a0 + a1);
        for (; i < k; i++)
            sum += weights[i] * row[i];
        return sum;
    }
}
