using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// Each row's own low-rank update added to a base layer's fp32 output in place, on the CPU: for every position of a
/// batch row with an adapter, u = scaling · A_seg · x, then y += B_seg · u, where A_seg and B_seg are that adapter's
/// rows of the stacked matrices. A decode step of a small model spent more time in the LibTorch version's eight ops per
/// layer (two matmuls, a mask, a where, an add) than in its base matmuls; this is one pass with no temporaries. Rows
/// without an adapter are not touched, and a row's numbers never depend on the other rows of its batch.
/// </summary>
internal static unsafe class Avx2LoraKernel
{
    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Fma.IsSupported && Avx2.IsSupported;

    // Multiply-adds below which one thread does the whole update (a decode step's single position is about 16K).
    private const long ParallelWork = 1 << 16;

    // Ranks up to this keep their projection on the stack.
    private const int StackRank = 256;

    /// <summary>
    /// y (rows × positions × outputs) += the update of each row's segment (start, rank, scaling; rank 0: none), from x
    /// (rows × positions × inputs), A (Σr × inputs) and Bᵀ (Σr × outputs), all fp32, contiguous and row-major.
    /// </summary>
    public static void AddInPlace(float* x, float* y, int rows, int positions, int inputs, int outputs, float* a, float* bTransposed,
        (int Start, int Rank, float Scaling)[] segments, int threads)
    {
        if (segments.Length != rows)
            throw new ArgumentException($"{segments.Length} segments for {rows} rows.");
        var update = new Update(x, y, positions, inputs, outputs, a, bTransposed, segments);
        long work = 0;
        foreach (var segment in segments) work += (long)segment.Rank * (inputs + outputs) * positions;
        var total = rows * positions;
        var parts = work < ParallelWork ? 1 : Math.Min(total, threads * 2);
        KernelThreads.Run(parts, threads, part => update.Run((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts)));
    }

    private sealed class Update(float* x, float* y, int positions, int inputs, int outputs, float* a, float* bTransposed,
        (int Start, int Rank, float Scaling)[] segments)
    {
        private readonly int _largest = segments.Select(s => s.Rank).DefaultIfEmpty(0).Max();

        // Positions [start, end) of the flattened rows × positions.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var largest = _largest;
            Span<float> projection = largest <= StackRank ? stackalloc float[largest] : new float[largest];
            fixed (float* u = projection)
                for (var p = start; p < end; p++)
                {
                    var (first, rank, scaling) = segments[p / positions];
                    if (rank == 0) continue;
                    var input = x + (long)p * inputs;
                    // projected = lora_A(x), times the row's scaling (PEFT: result + lora_B(lora_A(x)) * scaling)
                    var j = 0;
                    for (; j + 4 <= rank; j += 4)
                        (Avx2FloatKernel.Dot4(a + (long)(first + j) * inputs, inputs, input, inputs) * scaling).Store(u + j);
                    for (; j < rank; j++)
                        u[j] = Avx2FloatKernel.Dot(a + (long)(first + j) * inputs, input, inputs) * scaling;
                    AddProjected(u, rank, bTransposed + (long)first * outputs, y + (long)p * outputs, outputs);
                }
        }

        // y[o] += Σ_j u[j] · Bᵀ[j, o], each sum in j's order before it meets y: 32 outputs at a time, then eight. Four sums
        // in flight, where one alone waited on each multiply-add: a rank-8 update 1.3-1.6x faster where the outputs are
        // 256 or 1,024 (one to 62 positions, measured alternating in one process), 1.1x where the inputs are 1,024.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void AddProjected(float* u, int rank, float* bTransposed, float* y, int outputs)
        {
            var o = 0;
            for (; o + 32 <= outputs; o += 32)
            {
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
                var column = bTransposed + o;
                for (var j = 0; j < rank; j++, column += outputs)
                {
                    var weight = Vector256.Create(u[j]);
                    s0 = Fma.MultiplyAdd(weight, Avx.LoadVector256(column), s0);
                    s1 = Fma.MultiplyAdd(weight, Avx.LoadVector256(column + 8), s1);
                    s2 = Fma.MultiplyAdd(weight, Avx.LoadVector256(column + 16), s2);
                    s3 = Fma.MultiplyAdd(weight, Avx.LoadVector256(column + 24), s3);
                }
                Avx.Store(y + o, Avx.Add(Avx.LoadVector256(y + o), s0));
                Avx.Store(y + o + 8, Avx.Add(Avx.LoadVector256(y + o + 8), s1));
                Avx.Store(y + o + 16, Avx.Add(Avx.LoadVector256(y + o + 16), s2));
                Avx.Store(y + o + 24, Avx.Add(Avx.LoadVector256(y + o + 24), s3));
            }
            for (; o + 8 <= outputs; o += 8)
            {
                var sum = Vector256<float>.Zero;
                for (var j = 0; j < rank; j++)
                    sum = Fma.MultiplyAdd(Vector256.Create(u[j]), Avx.LoadVector256(bTransposed + (long)j * outputs + o), sum);
                Avx.Store(y + o, Avx.Add(Avx.LoadVector256(y + o), sum));
            }
            for (; o < outputs; o++)
            {
                var sum = 0f;
                for (var j = 0; j < rank; j++)
                    sum = MathF.FusedMultiplyAdd(u[j], bTransposed[(long)j * outputs + o], sum);
                y[o] += sum;
            }
        }
    }
}
