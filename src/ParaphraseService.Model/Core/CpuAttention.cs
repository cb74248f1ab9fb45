using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>
/// Softmax attention for fp32 inference on the CPU, one loop over memory per (row, head, query) instead of the dozen
/// LibTorch ops of <see cref="MultiHeadAttention.Attend"/> (two matmuls, divisions, mask, softmax, casts, permutes), each
/// a native call and an allocation: at decode, those cost more than the arithmetic. The same arithmetic, in the same
/// order per score: the dot product, then each divisor in turn, masked scores set to the most negative float (so a
/// row with nothing to attend to averages the values rather than turning into NaN), max-subtracted exponentials. Keys
/// and values may be fp32 or, from a cache that stores them so (<see cref="Loading.ModelLoadOptions.KvCache"/>), bfloat16,
/// widened exactly as they are read: the result is then the one of fp32 keys and values holding the rounded numbers.
/// </summary>
internal static unsafe class CpuAttention
{
    // Multiply-adds below which the caller's thread does it alone.
    private const long ParallelWork = 1 << 16;

    /// <summary>
    /// Whether <see cref="Attend"/> can take these operands: on the CPU, q fp32, k and v both fp32 or both bfloat16, the
    /// last dimension contiguous, inside no_grad.
    /// </summary>
    public static bool Applies(Tensor q, Tensor k, Tensor v) =>
        CpuKernels.Active && q.device_type == DeviceType.CPU && k.device_type == DeviceType.CPU && v.device_type == DeviceType.CPU
        && q.dtype == ScalarType.Float32 && k.dtype is ScalarType.Float32 or ScalarType.BFloat16 && v.dtype == k.dtype
        && q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1;

    /// <summary>
    /// q (B, H, T, D), k and v (B, H, S, D), any strides but the last; <paramref name="allowed"/> (B, 1, T, S) boolean.
    /// Returns (B, T, H·D).
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor allowed, float[] divisors)
    {
        var (b, heads, t, d) = ((int)q.size(0), (int)q.size(1), (int)q.size(2), (int)q.size(3));
        var s = (int)k.size(2);
        using var mask = allowed.expand(b, 1, t, s).contiguous();
        var context = empty(b, t, heads * d, ScalarType.Float32);
        var work = new Work(q, k, v, mask, context, divisors);
        var tasks = b * heads * t;
        var parts = (long)tasks * s * d * 2 < ParallelWork ? 1 : Math.Min(tasks, torch.get_num_threads() * 4);
        KernelThreads.Run(parts, torch.get_num_threads(), part => work.Run(tasks * part / parts, tasks * (part + 1) / parts));
        return context;
    }

    private sealed class Work
    {
        private readonly float* _q, _context;
        private readonly byte* _k, _v;
        private readonly bool _bfloat16;
        private readonly bool* _allowed;
        private readonly long[] _qStride, _kStride, _vStride;
        private readonly int _heads, _t, _s, _d;
        private readonly float[] _divisors;

        public Work(Tensor q, Tensor k, Tensor v, Tensor allowed, Tensor context, float[] divisors)
        {
            _q = TensorMemory.StridedFloats(q);
            _k = TensorMemory.StridedData(k);
            _v = TensorMemory.StridedData(v);
            _bfloat16 = k.dtype == ScalarType.BFloat16;
            _context = TensorMemory.Floats(context);
            _allowed = TensorMemory.Bools(allowed);
            (_qStride, _kStride, _vStride) = (TensorMemory.Strides(q), TensorMemory.Strides(k), TensorMemory.Strides(v));
            (_heads, _t, _s, _d) = ((int)q.size(1), (int)q.size(2), (int)k.size(2), (int)q.size(3));
            _divisors = divisors;
        }

        /// <summary>Tasks [first, end): task = ((row · H) + head) · T + query.</summary>
        public void Run(int first, int end)
        {
            if (_bfloat16)
                Run<BFloat16Elements>(first, end);
            else
                Run<Float32Elements>(first, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Run<TCached>(int first, int end) where TCached : struct, ICachedElements
        {
            var scores = _s <= 4096 ? stackalloc float[_s] : new float[_s];
            // a key's and a value's step in bytes
            var (kRow, vRow) = (_kStride[2] * TCached.Size, _vStride[2] * TCached.Size);
            for (var task = first; task < end; task++)
            {
                var (row, rest) = Math.DivRem(task, _heads * _t);
                var (head, query) = Math.DivRem(rest, _t);
                var q = _q + row * _qStride[0] + head * _qStride[1] + query * _qStride[2];
                var k = _k + (row * _kStride[0] + head * _kStride[1]) * TCached.Size;
                var v = _v + (row * _vStride[0] + head * _vStride[1]) * TCached.Size;
                var allowed = _allowed + ((long)row * _t + query) * _s;

                // attn_weights = torch.matmul(query, key.transpose(-1, -2)) / divisor ...; masked_fill(~allowed, finfo.min)
                var max = float.NegativeInfinity;
                var j = 0;
                // At batch 8 every layer's keys and values are far more than the caches hold: each (row, head) streams
                // its own from memory, and asked for a few keys ahead (with the values the weighted sum will read after
                // the softmax) they arrive sooner: 3.0-3.3 → 2.5-2.9 ms a step on bench-250m at batch 8.
                PrefetchKeys<TCached>(k, v, 0, 8, kRow, vRow);
                for (; j < _s; j++)
                {
                    if (j + 4 <= _s && allowed[j] && allowed[j + 1] && allowed[j + 2] && allowed[j + 3])
                    {
                        PrefetchKeys<TCached>(k, v, j + 8, 4, kRow, vRow);
                        // Four keys against one load of the query: each score is still its own Dot, bit for bit.
                        Dot4<TCached>(q, k + j * kRow, kRow, _d, scores.Slice(j, 4));
                        for (var n = j; n < j + 4; n++)
                        {
                            foreach (var divisor in _divisors) scores[n] /= divisor;
                            max = MathF.Max(max, scores[n]);
                        }
                        j += 3;
                        continue;
                    }
                    var score = float.MinValue;
                    if (allowed[j])
                    {
                        score = Dot<TCached>(q, k + j * kRow, _d);
                        foreach (var divisor in _divisors) score /= divisor;
                    }
                    scores[j] = score;
                    max = MathF.Max(max, score);
                }
                // attn_weights = softmax(attn_weights, dim=-1). A masked score is exp(finfo.min - max) = 0 (VectorMath.Exp is
                // exactly 0 below e^-87.3) unless every score is finfo.min (nothing to attend to: then all are 1, an average).
                if (float.IsFinite(max))
                    VectorMath.Exp(scores, max);
                else
                    // an overflowed score (a broken model): exp gives NaN here, and the row fails on its own
                    for (j = 0; j < _s; j++)
                        scores[j] = allowed[j] ? MathF.Exp(scores[j] - max) : 0f;
                // summed in key order, so that a row sums the same alone and in a batch (where its keys may sit further right)
                var sum = 0f;
                for (j = 0; j < _s; j++)
                    sum += scores[j];
                var total = Vector256.Create(sum);
                for (j = 0; j + 8 <= _s; j += 8)
                    (Vector256.Create(scores.Slice(j, 8)) / total).CopyTo(scores.Slice(j, 8));
                for (; j < _s; j++)
                    scores[j] /= sum;
                // attn_output = torch.matmul(attn_weights, value), written straight into (B, T, H·D)
                WeightedSum<TCached>(scores, v, vRow, _d, _context + ((long)row * _t + query) * _heads * _d + head * _d);
            }
        }

        // Keys and values [first, first + count), a cache line (64 bytes) at a time; past the last key it asks for memory
        // it will not read, which a prefetch may do.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void PrefetchKeys<TCached>(byte* k, byte* v, int first, int count, long kRow, long vRow) where TCached : struct, ICachedElements
        {
            if (!Sse.IsSupported) return;
            var rowBytes = _d * TCached.Size;
            for (var key = first; key < first + count; key++)
                for (var i = 0; i < rowBytes; i += 64)
                {
                    Sse.Prefetch0(k + key * kRow + i);
                    Sse.Prefetch0(v + key * vRow + i);
                }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static float Dot<TCached>(float* a, byte* b, int n) where TCached : struct, ICachedElements
        {
            var i = 0;
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc += Vector256.Load(a + i) * TCached.Load8(b, i);
            var sum = Vector256.Sum(acc);
            for (; i < n; i++)
                sum += a[i] * TCached.Load(b, i);
            return sum;
        }

        // Dot(a, b + r·stride, n) for r = 0..3 (stride in bytes), each summed in the same order as Dot.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Dot4<TCached>(float* a, byte* b, long stride, int n, Span<float> sums) where TCached : struct, ICachedElements
        {
            byte* b1 = b + stride, b2 = b + 2 * stride, b3 = b + 3 * stride;
            Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            var i = 0;
            for (; i <= n - 8; i += 8)
            {
                var x = Vector256.Load(a + i);
                acc0 += x * TCached.Load8(b, i);
                acc1 += x * TCached.Load8(b1, i);
                acc2 += x * TCached.Load8(b2, i);
                acc3 += x * TCached.Load8(b3, i);
            }
            var (s0, s1, s2, s3) = (Vector256.Sum(acc0), Vector256.Sum(acc1), Vector256.Sum(acc2), Vector256.Sum(acc3));
            for (; i < n; i++)
                (s0, s1, s2, s3) = (s0 + a[i] * TCached.Load(b, i), s1 + a[i] * TCached.Load(b1, i), s2 + a[i] * TCached.Load(b2, i), s3 + a[i] * TCached.Load(b3, i));
            (sums[0], sums[1], sums[2], sums[3]) = (s0, s1, s2, s3);
        }

        // y = Σ_j weights[j] · v_j over the keys with a weight (stride in bytes), 32 outputs at a time held in registers;
        // each output is added to in key order, as a loop of y += v_j · w_j would.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void WeightedSum<TCached>(ReadOnlySpan<float> weights, byte* v, long stride, int d, float* y) where TCached : struct, ICachedElements
        {
            var c = 0;
            for (; c + 32 <= d; c += 32)
            {
                Vector256<float> y0 = default, y1 = default, y2 = default, y3 = default;
                for (var j = 0; j < weights.Length; j++)
                {
                    if (weights[j] == 0) continue;
                    var w = Vector256.Create(weights[j]);
                    var x = v + j * stride;
                    y0 += TCached.Load8(x, c) * w;
                    y1 += TCached.Load8(x, c + 8) * w;
                    y2 += TCached.Load8(x, c + 16) * w;
                    y3 += TCached.Load8(x, c + 24) * w;
                }
                y0.Store(y + c);
                y1.Store(y + c + 8);
                y2.Store(y + c + 16);
                y3.Store(y + c + 24);
            }
            if (c == d) return;
            new Span<float>(y + c, d - c).Clear();
            for (var j = 0; j < weights.Length; j++)
            {
                if (weights[j] != 0) AddScaled<TCached>(y, v + j * stride, c, weights[j], d);
            }
        }

        // y[i] += x[i] · weight for i in [from, to)
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void AddScaled<TCached>(float* y, byte* x, int from, float weight, int to) where TCached : struct, ICachedElements
        {
            var i = from;
            var w = Vector256.Create(weight);
            for (; i <= to - 8; i += 8)
                (Vector256.Load(y + i) + TCached.Load8(x, i) * w).Store(y + i);
            for (; i < to; i++)
                y[i] += TCached.Load(x, i) * weight;
        }
    }
}
