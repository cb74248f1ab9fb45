using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// y = x · Wᵀ + b for fp32 activations on the CPU, up to <see cref="MaxRows"/> rows. One row (a decode step, bound by
/// reading the weight) streams the weight four rows at a time; LibTorch's GEMM streamed it at about 60% of that here
/// (README, decode speed). Two rows or more (a speculative step, a batch, a prompt) are tiled so that each load serves
/// several multiply-adds. Every path sums a dot product in one order (<see cref="Dot"/>), so a row gives the same bits
/// alone and in any batch.
/// </summary>
internal static unsafe class Avx2FloatKernel
{
    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Fma.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Rows above which LibTorch's blocked GEMM runs instead. Measured in a forward of the demo model: the tiles were 30-40%
    /// faster at 49-89 rows, 10-20% at 125-145 and level at about 300 (alone, LibTorch's GEMM was faster from 128 rows).
    /// </summary>
    public const int MaxRows = 256;

    // Bytes of activation rows one block of the tiles keeps in L2 (half of this machine's 512 KB per core).
    private const int RowBlockBytes = 256 * 1024;

    // Multiply-adds below which one thread does the whole product.
    private const long ParallelWork = 1 << 16;

    // Bytes ahead of the weight being read that are asked for early (see Avx2Int8Kernel).
    private const int PrefetchDistance = 1024;

    /// <summary>y (rows × outputs) from x (rows × k), W (outputs × k, row-major) and an optional bias, all fp32 and contiguous.</summary>
    public static void Multiply(float* x, int rows, int k, float* w, float* bias, int outputs, float* y, int threads)
    {
        var product = new Product(x, rows, k, w, bias, outputs, y);
        var parts = (long)rows * k * outputs < ParallelWork ? 1 : Math.Clamp(threads * 4, 1, Math.Max(1, outputs / 8));
        // Parts of a multiple of three outputs where rows are tiled (a tile takes one from each third), so only the last
        // part has outputs left over
        var grain = rows == 1 ? 1 : 3;
        var units = (outputs + grain - 1) / grain;
        int Boundary(int part) => Math.Min(outputs, grain * (int)((long)units * part / parts));
        KernelThreads.Run(parts, threads, part => product.Run(Boundary(part), Boundary(part + 1)));
    }

    private sealed class Product(float* x, int rows, int k, float* w, float* bias, int outputs, float* y)
    {
        public void Run(int start, int end)
        {
            if (rows == 1)
                OneRow(start, end);
            else
                ManyRows(start, end);
        }

        // Two rows or more (a speculative step, a batch, a prompt): tiles of up to TileRows rows by three outputs, their
        // sums in registers, each load of a weight row serving every activation row of the tile and each load of an
        // activation row three weight rows. A block's rows are split into as few tiles as fit, of even heights (nine rows:
        // five and four, not eight and a lone row that would read the weight for one multiply-add a load). The three
        // outputs of a tile are a third of the part apart, so the weight is read as three sequential streams (as the
        // one-row pass reads four), which keeps more reads in flight than one stream of adjacent rows when the weight
        // comes from memory. Rows go in blocks whose activations stay in L2 while every output of the part passes over
        // them. Every sum is in Dot's order, so a row gives the same bits in any tile, any batch, and alone.
        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        private void ManyRows(int start, int end)
        {
            var blockRows = Math.Max(TileRows, RowBlockBytes / (Math.Max(1, k) * sizeof(float)) / TileRows * TileRows);
            var third = (end - start) / 3;
            for (var first = 0; first < rows; first += blockRows)
            {
                var last = Math.Min(rows, first + blockRows);
                for (var o = start; o < start + third; o++)
                {
                    for (int r = first, tiles = (last - first + TileRows - 1) / TileRows; tiles > 0; tiles--)
                    {
                        var height = (last - r + tiles - 1) / tiles;
                        Tile(o, third, r, height);
                        r += height;
                    }
                }
                for (var o = start + 3 * third; o < end; o++)
                    for (var r = first; r < last; r++)
                        y[(long)r * outputs + o] = Dot(w + (long)o * k, x + (long)r * k, k) + (bias is null ? 0f : bias[o]);
            }
        }

        // Rows r to r + height − 1 by outputs o, o + apart and o + 2·apart. Each height has its own compiled loop (the
        // JIT compiles a generic method once for each struct it is given), so no multiply-add is spent on a row the tile
        // does not have.
        private void Tile(int o, int apart, int r, int height)
        {
            switch (height)
            {
                case 1: Tile1x3(o, apart, r); break;
                case 2: Tile<Rows2>(o, apart, r); break;
                case 3: Tile<Rows3>(o, apart, r); break;
                case 4: Tile<Rows4>(o, apart, r); break;
                case 5: Tile<Rows5>(o, apart, r); break;
                case 6: Tile<Rows6>(o, apart, r); break;
                case 7: Tile<Rows7>(o, apart, r); break;
                default: Tile<Rows8>(o, apart, r); break;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile<TRows>(int o, int apart, int r) where TRows : struct, ITileRows
        {
            var sums = stackalloc float[24];
            Sums<TRows>(w + (long)o * k, (long)apart * k, x + (long)r * k, k, k & ~7, sums);
            Store(o, apart, r, TRows.Count, sums);
        }

        // One row by three outputs.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile1x3(int o, int apart, int r)
        {
            var stride = (long)apart * k;
            var blocks = k & ~7;
            Vector256<float> a0 = default, a1 = default, a2 = default;
            for (float* at = w + (long)o * k, end = at + blocks, row = x + (long)r * k; at < end; at += 8, row += 8)
            {
                Prefetch3(at, stride);
                var u = Avx.LoadVector256(row);
                (a0, a1, a2) = (Fma.MultiplyAdd(Avx.LoadVector256(at), u, a0), Fma.MultiplyAdd(Avx.LoadVector256(at + stride), u, a1),
                    Fma.MultiplyAdd(Avx.LoadVector256(at + 2 * stride), u, a2));
            }
            var sums = stackalloc float[24];
            (sums[0], sums[8], sums[16]) = (Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2));
            Store(o, apart, r, 1, sums);
        }

        // Rows r to r + count − 1 of outputs o, o + apart and o + 2·apart, from sums[8·j + n], row r + n's sum over the
        // 8-float blocks of k for output o + j·apart: the tail of k past the blocks and the bias are added here.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Store(int o, int apart, int r, int count, float* sums)
        {
            var blocks = k & ~7;
            var w0 = w + (long)o * k;
            var stride = (long)apart * k;
            for (var n = 0; n < count; n++)
            {
                var row = x + (long)(r + n) * k;
                var at = y + (long)(r + n) * outputs + o;
                at[0] = Tail(w0, row, blocks, k, sums[n]) + (bias is null ? 0f : bias[o]);
                at[apart] = Tail(w0 + stride, row, blocks, k, sums[8 + n]) + (bias is null ? 0f : bias[o + apart]);
                at[2 * apart] = Tail(w0 + 2 * stride, row, blocks, k, sums[16 + n]) + (bias is null ? 0f : bias[o + 2 * apart]);
            }
        }

        // One row (a decode step): four quarters of the part at once, four sequential streams from memory per thread
        // instead of one, which keeps more reads in flight (see Avx2Int8Kernel). Each sum in Dot's order.
        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        private void OneRow(int start, int end)
        {
            var quarter = (end - start) / 4;
            var stride = (long)quarter * k;
            for (var i = 0; i < quarter; i++)
            {
                var o = start + i;
                var sums = Dot4(w + (long)o * k, stride, x, k);
                for (var n = 0; n < 4; n++)
                    y[o + n * quarter] = sums.GetElement(n) + (bias is null ? 0f : bias[o + n * quarter]);
            }
            for (var o = start + 4 * quarter; o < end; o++)
                y[o] = Dot(w + (long)o * k, x, k) + (bias is null ? 0f : bias[o]);
        }
    }

    /// <summary>
    /// Rows in a tile: eight where the CPU has 32 vector registers (AVX-512's; a tile's 24 sums, three weight vectors and
    /// an activation vector stay in registers), four where it has 16.
    /// </summary>
    private static readonly int TileRows = Avx512F.VL.IsSupported ? 8 : 4;

    /// <summary>A tile's height, as a type, so that each height compiles to its own loop.</summary>
    private interface ITileRows
    {
        static abstract int Count { get; }
    }

    private struct Rows2 : ITileRows { public static int Count => 2; }
    private struct Rows3 : ITileRows { public static int Count => 3; }
    private struct Rows4 : ITileRows { public static int Count => 4; }
    private struct Rows5 : ITileRows { public static int Count => 5; }
    private struct Rows6 : ITileRows { public static int Count => 6; }
    private struct Rows7 : ITileRows { public static int Count => 7; }
    private struct Rows8 : ITileRows { public static int Count => 8; }

    /// <summary>
    /// A tile's sums over the first <paramref name="blocks"/> values of k, each in <see cref="Dot"/>'s order:
    /// sums[8·j + n] is row n's (rows k floats apart from <paramref name="row"/>) with the weight row j
    /// <paramref name="stride"/>s on from <paramref name="weights"/>. A static method of what the loop reads, with
    /// advancing pointers and a prefetch at every block: inside the instance method, with an index and a prefetch every
    /// other block, the JIT kept the row pointers on the stack and reloaded them in the loop (measured, alternating in one
    /// process: tiles on data in cache 1.0-1.2x faster this way, a 62-token prompt's forward of the demo model 8-9%).
    /// The rows a tile of <typeparamref name="TRows"/> does not have are folded away when the JIT compiles it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sums<TRows>(float* weights, long stride, float* row, long k, int blocks, float* sums) where TRows : struct, ITileRows
    {
        var height = TRows.Count;
        Vector256<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default,
            a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default,
            a40 = default, a41 = default, a42 = default, a50 = default, a51 = default, a52 = default,
            a60 = default, a61 = default, a62 = default, a70 = default, a71 = default, a72 = default;
        // Rows 0-3 at row + 0, k, 2k, 3k; rows 4-7 at upper + the same: two advancing pointers and two distances.
        var k3 = 3 * k;
        var upper = row + 4 * k;
        for (float* at = weights, end = weights + blocks; at < end; at += 8, row += 8, upper += 8)
        {
            Prefetch3(at, stride);
            var (v0, v1, v2) = (Avx.LoadVector256(at), Avx.LoadVector256(at + stride), Avx.LoadVector256(at + 2 * stride));
            var u = Avx.LoadVector256(row);
            (a00, a01, a02) = (Fma.MultiplyAdd(v0, u, a00), Fma.MultiplyAdd(v1, u, a01), Fma.MultiplyAdd(v2, u, a02));
            u = Avx.LoadVector256(row + k);
            (a10, a11, a12) = (Fma.MultiplyAdd(v0, u, a10), Fma.MultiplyAdd(v1, u, a11), Fma.MultiplyAdd(v2, u, a12));
            if (height > 2)
            {
                u = Avx.LoadVector256(row + 2 * k);
                (a20, a21, a22) = (Fma.MultiplyAdd(v0, u, a20), Fma.MultiplyAdd(v1, u, a21), Fma.MultiplyAdd(v2, u, a22));
            }
            if (height > 3)
            {
                u = Avx.LoadVector256(row + k3);
                (a30, a31, a32) = (Fma.MultiplyAdd(v0, u, a30), Fma.MultiplyAdd(v1, u, a31), Fma.MultiplyAdd(v2, u, a32));
            }
            if (height > 4)
            {
                u = Avx.LoadVector256(upper);
                (a40, a41, a42) = (Fma.MultiplyAdd(v0, u, a40), Fma.MultiplyAdd(v1, u, a41), Fma.MultiplyAdd(v2, u, a42));
            }
            if (height > 5)
            {
                u = Avx.LoadVector256(upper + k);
                (a50, a51, a52) = (Fma.MultiplyAdd(v0, u, a50), Fma.MultiplyAdd(v1, u, a51), Fma.MultiplyAdd(v2, u, a52));
            }
            if (height > 6)
            {
                u = Avx.LoadVector256(upper + 2 * k);
                (a60, a61, a62) = (Fma.MultiplyAdd(v0, u, a60), Fma.MultiplyAdd(v1, u, a61), Fma.MultiplyAdd(v2, u, a62));
            }
            if (height > 7)
            {
                u = Avx.LoadVector256(upper + k3);
                (a70, a71, a72) = (Fma.MultiplyAdd(v0, u, a70), Fma.MultiplyAdd(v1, u, a71), Fma.MultiplyAdd(v2, u, a72));
            }
        }
        Sum4(a00, a10, a20, a30).Store(sums);
        Sum4(a01, a11, a21, a31).Store(sums + 8);
        Sum4(a02, a12, a22, a32).Store(sums + 16);
        if (height > 4)
        {
            Sum4(a40, a50, a60, a70).Store(sums + 4);
            Sum4(a41, a51, a61, a71).Store(sums + 12);
            Sum4(a42, a52, a62, a72).Store(sums + 20);
        }
    }

    /// <summary>
    /// <see cref="Dot"/>(weights + n·stride, row, k) for n = 0..3, the same bits: four sums in flight, where one sum
    /// alone waits on each multiply-add before the next.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector128<float> Dot4(float* weights, long stride, float* row, int k)
    {
        float* w1 = weights + stride, w2 = weights + 2 * stride, w3 = weights + 3 * stride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var i = 0;
        for (; i + 8 <= k; i += 8)
        {
            if ((i & 15) == 0)
            {
                var ahead = i + PrefetchDistance / sizeof(float);
                Sse.Prefetch0(weights + ahead);
                Sse.Prefetch0(w1 + ahead);
                Sse.Prefetch0(w2 + ahead);
                Sse.Prefetch0(w3 + ahead);
            }
            var u = Avx.LoadVector256(row + i);
            (a0, a1) = (Fma.MultiplyAdd(Avx.LoadVector256(weights + i), u, a0), Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), u, a1));
            (a2, a3) = (Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), u, a2), Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), u, a3));
        }
        var sums = Sum4(a0, a1, a2, a3);
        return Vector128.Create(Tail(weights, row, i, k, sums.GetElement(0)), Tail(w1, row, i, k, sums.GetElement(1)),
            Tail(w2, row, i, k, sums.GetElement(2)), Tail(w3, row, i, k, sums.GetElement(3)));
    }

    /// <summary>
    /// The dot product of k floats in the one order every path of this kernel sums in: one accumulator over the 8-float
    /// blocks, reduced as Vector256.Sum does (((0+1)+(2+3))+((4+5)+(6+7))), then the tail one at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot(float* weights, float* row, int k)
    {
        var sum = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= k; i += 8)
        {
            if ((i & 15) == 0)
                Sse.Prefetch0(weights + i + PrefetchDistance / sizeof(float));
            sum = Fma.MultiplyAdd(Avx.LoadVector256(weights + i), Avx.LoadVector256(row + i), sum);
        }
        return Tail(weights, row, i, k, Vector256.Sum(sum));
    }

    // A tile's three weight streams are read once a step in a model larger than the caches: ask early for what each
    // reads next (further along its row, or on into the stream's next row, which follows it in memory).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch3(float* at, long stride)
    {
        const int ahead = PrefetchDistance / sizeof(float);
        Sse.Prefetch0(at + ahead);
        Sse.Prefetch0(at + stride + ahead);
        Sse.Prefetch0(at + 2 * stride + ahead);
    }

    /// <summary>Vector256.Sum of each of a, b, c and d, in its order ((0+1)+(2+3))+((4+5)+(6+7)), as one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        // [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7], then the same for c and d, then pairs of those
        var sums = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return Sse.Add(sums.GetLower(), sums.GetUpper());
    }

    // sum + Σ weights[j]·row[j] for j from i to k, one at a time.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail(float* weights, float* row, int i, int k, float sum)
    {
        for (; i < k; i++)
            sum += weights[i] * row[i];
        return sum;
    }
}
