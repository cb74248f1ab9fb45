using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// y = x · Wᵀ + b for a few rows of fp32 activations on the CPU, in one pass over the fp32 weight: the decode step,
/// bound by reading the weight. LibTorch's GEMM for 1-16 rows streamed it at about 60% of what this loop does here
/// (README, decode speed). Four rows share each weight load. A row alone and in a batch of four or more may differ in the
/// last bits: their sums run over the columns in another order.
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
        // Columns per pass from four rows on: their slices of x stay in L1 while every weight row of the part passes over
        // them (four rows of 4096 floats would not, and reading x from L2 held a batch of 8 to a sixth of the FMA
        // rate). Fewer rows take whole weight rows, which the prefetcher streams best (2 KB slices cost a fifth at batch 1).
        private readonly int _columnBlock = rows < 4 ? Math.Max(1, k) : 1024;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            for (var first = 0; first < k; first += _columnBlock)
            {
                var width = Math.Min(_columnBlock, k - first);
                for (var o = start; o < end; o++)
                {
                    var weights = w + (long)o * k + first;
                    var r = 0;
                    for (; r + 4 <= rows; r += 4)
                    {
                        var (s0, s1, s2, s3) = Dot4(weights, x + (long)r * k + first, k, width);
                        Add(r, o, first, s0);
                        Add(r + 1, o, first, s1);
                        Add(r + 2, o, first, s2);
                        Add(r + 3, o, first, s3);
                    }
                    for (; r < rows; r++)
                        Add(r, o, first, Dot(weights, x + (long)r * k + first, width));
                }
            }
        }

        // y = Σ over column blocks, in block order, then + b.
        private void Add(int r, int o, int first, float partial)
        {
            ref var target = ref y[(long)r * outputs + o];
            target = first == 0 ? partial : target + partial;
            if (first + _columnBlock >= k && bias is not null) target += bias[o];
        }

        // Two accumulators (even and odd eight), as Dot4 keeps for each of its rows.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static float Dot(float* weights, float* row, int width)
        {
            var (a0, a1) = (Vector256<float>.Zero, Vector256<float>.Zero);
            var i = 0;
            for (; i + 16 <= width; i += 16)
            {
                Sse.Prefetch0(weights + i + PrefetchDistance / sizeof(float));
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), Avx.LoadVector256(row + i), a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i + 8), Avx.LoadVector256(row + i + 8), a1);
            }
            if (i + 8 <= width)
            {
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), Avx.LoadVector256(row + i), a0);
                i += 8;
            }
            var sum = Vector256.Sum(a0 + a1);
            for (; i < width; i++)
                sum += weights[i] * row[i];
            return sum;
        }

        // Four rows, k apart, against one weight row: each weight vector is loaded once for all four.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static (float, float, float, float) Dot4(float* weights, float* rows, int k, int width)
        {
            var (a0, a1, a2, a3) = (Vector256<float>.Zero, Vector256<float>.Zero, Vector256<float>.Zero, Vector256<float>.Zero);
            var (b0, b1, b2, b3) = (Vector256<float>.Zero, Vector256<float>.Zero, Vector256<float>.Zero, Vector256<float>.Zero);
            float* r0 = rows, r1 = rows + k, r2 = rows + 2L * k, r3 = rows + 3L * k;
            var i = 0;
            for (; i + 16 <= width; i += 16)
            {
                Sse.Prefetch0(weights + i + PrefetchDistance / sizeof(float));
                var (w0, w1) = (Avx.LoadVector256(weights + i), Avx.LoadVector256(weights + i + 8));
                a0 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r0 + i), a0);
                b0 = Fma.MultiplyAdd(w1, Avx.LoadVector256(r0 + i + 8), b0);
                a1 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r1 + i), a1);
                b1 = Fma.MultiplyAdd(w1, Avx.LoadVector256(r1 + i + 8), b1);
                a2 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r2 + i), a2);
                b2 = Fma.MultiplyAdd(w1, Avx.LoadVector256(r2 + i + 8), b2);
                a3 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r3 + i), a3);
                b3 = Fma.MultiplyAdd(w1, Avx.LoadVector256(r3 + i + 8), b3);
            }
            if (i + 8 <= width)
            {
                var w0 = Avx.LoadVector256(weights + i);
                a0 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r0 + i), a0);
                a1 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r1 + i), a1);
                a2 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r2 + i), a2);
                a3 = Fma.MultiplyAdd(w0, Avx.LoadVector256(r3 + i), a3);
                i += 8;
            }
            var (s0, s1, s2, s3) = (Vector256.Sum(a0 + b0), Vector256.Sum(a1 + b1), Vector256.Sum(a2 + b2), Vector256.Sum(a3 + b3));
            for (; i < width; i++)
            {
                var wi = weights[i];
                (s0, s1, s2, s3) = (s0 + wi * r0[i], s1 + wi * r1[i], s2 + wi * r2[i], s3 + wi * r3[i]);
            }
            return (s0, s1, s2, s3);
        }
    }
}
