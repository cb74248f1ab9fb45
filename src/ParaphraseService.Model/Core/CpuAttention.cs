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
/// row with nothing to attend to averages the values rather than turning into NaN), max-subtracted exponentials.
/// </summary>
internal static unsafe class CpuAttention
{
    // Multiply-adds below which the caller's thread does it alone.
    private const long ParallelWork = 1 << 16;

    /// <summary>Whether <see cref="Attend"/> can take these operands: fp32 on the CPU, the last dimension contiguous, inside no_grad.</summary>
    public static bool Applies(Tensor q, Tensor k, Tensor v) =>
        CpuKernels.Active && q.device_type == DeviceType.CPU && k.device_type == DeviceType.CPU && v.device_type == DeviceType.CPU
        && q.dtype == ScalarType.Float32 && k.dtype == ScalarType.Float32 && v.dtype == ScalarType.Float32
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
        private readonly float* _q, _k, _v, _context;
        private readonly bool* _allowed;
        private readonly long[] _qStride, _kStride, _vStride;
        private readonly int _heads, _t, _s, _d;
        private readonly float[] _divisors;

        public Work(Tensor q, Tensor k, Tensor v, Tensor allowed, Tensor context, float[] divisors)
        {
            _q = TensorMemory.StridedFloats(q);
            _k = TensorMemory.StridedFloats(k);
            _v = TensorMemory.StridedFloats(v);
            _context = TensorMemory.Floats(context);
            _allowed = TensorMemory.Bools(allowed);
            (_qStride, _kStride, _vStride) = (TensorMemory.Strides(q), TensorMemory.Strides(k), TensorMemory.Strides(v));
            (_heads, _t, _s, _d) = ((int)q.size(1), (int)q.size(2), (int)k.size(2), (int)q.size(3));
            _divisors = divisors;
        }

        /// <summary>Tasks [first, end): task = ((row · H) + head) · T + query.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int first, int end)
        {
            var scores = _s <= 4096 ? stackalloc float[_s] : new float[_s];
            var (kRow, vRow) = (_kStride[2], _vStride[2]);
            for (var task = first; task < end; task++)
            {
                var (row, rest) = Math.DivRem(task, _heads * _t);
                var (head, query) = Math.DivRem(rest, _t);
                var q = _q + row * _qStride[0] + head * _qStride[1] + query * _qStride[2];
                var k = _k + row * _kStride[0] + head * _kStride[1];
                var v = _v + row * _vStride[0] + head * _vStride[1];
                var allowed = _allowed + ((long)row * _t + query) * _s;

                // attn_weights = torch.matmul(query, key.transpose(-1, -2)) / divisor ...; masked_fill(~allowed, finfo.min)
                var max = float.NegativeInfinity;
                var j = 0;
                // At batch 8 every layer's keys and values are far more than the caches hold: each (row, head) streams
                // its own from memory, and asked for a few keys ahead (with the values the weighted sum will read after
                // the softmax) they arrive sooner: 3.0-3.3 → 2.5-2.9 ms a step on bench-250m at batch 8.
                PrefetchKeys(k, v, 0, 8, kRow, vRow);
                for (; j < _s; j++)
                {
                    if (j + 4 <= _s && allowed[j] && allowed[j + 1] && allowed[j + 2] && allowed[j + 3])
                    {
                        PrefetchKeys(k, v, j + 8, 4, kRow, vRow);
                        // Four keys against one load of the query: each score is still its own Dot, bit for bit.
                        Dot4(q, k + j * kRow, kRow, _d, scores.Slice(j, 4));
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
                        score = Dot(q, k + j * kRow, _d);
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
                WeightedSum(scores, v, vRow, _d, _context + ((long)row * _t + query) * _heads * _d + head * _d);
            }
        }

        // Keys and values [first, first + count), a cache line (16 floats) at a time; past the last key it asks for memory
        // it will not read, which a prefetch may do.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void PrefetchKeys(float* k, float* v, int first, int count, long kRow, long vRow)
        {
            if (!Sse.IsSupported) return;
            for (var key = first; key < first + count; key++)
                for (var i = 0; i < _d; i += 16)
                {
                    Sse.Prefetch0(k + key * kRow + i);
                    Sse.Prefetch0(v + key * vRow + i);
                }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static float Dot(float* a, float* b, int n)
        {
            var i = 0;
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc += Vector256.Load(a + i) * Vector256.Load(b + i);
            var sum = Vector256.Sum(acc);
            for (; i < n; i++)
                sum += a[i] * b[i];
            return sum;
        }

        // Dot(a, b + r·stride, n) for r = 0..3, each summed in the same order as Dot.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Dot4(float* a, float* b, long stride, int n, Span<float> sums)
        {
            float* b1 = b + stride, b2 = b + 2 * stride, b3 = b + 3 * stride;
            Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            var i = 0;
            for (; i <= n - 8; i += 8)
            {
                var x = Vector256.Load(a + i);
                acc0 += x * Vector256.Load(b + i);
                acc1 += x * Vector256.Load(b1 + i);
                acc2 += x * Vector256.Load(b2 + i);
                acc3 += x * Vector256.Load(b3 + i);
            }
            var (s0, s1, s2, s3) = (Vector256.Sum(acc0), Vector256.Sum(acc1), Vector256.Sum(acc2), Vector256.Sum(acc3));
            for (; i < n; i++)
                (s0, s1, s2, s3) = (s0 + a[i] * b[i], s1 + a[i] * b1[i], s2 + a[i] * b2[i], s3 + a[i] * b3[i]);
            (sums[0], sums[1], sums[2], sums[3]) = (s0, s1, s2, s3);
        }

        // y = Σ_j weights[j] · v_j over the keys with a weight, 32 outputs at a time held in registers; each output is
        // added to in key order, as a loop of y += v_j · w_j would.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void WeightedSum(ReadOnlySpan<float> weights, float* v, long stride, int d, float* y)
        {
            var c = 0;
            for (; c + 32 <= d; c += 32)
            {
                Vector256<float> y0 = default, y1 = default, y2 = default, y3 = default;
                for (var j = 0; j < weights.Length; j++)
                {
                    if (weights[j] == 0) continue;
                    var w = Vector256.Create(weights[j]);
                    var x = v + j * stride + c;
                    y0 += Vector256.Load(x) * w;
                    y1 += Vector256.Load(x + 8) * w;
                    y2 += Vector256.Load(x + 16) * w;
                    y3 += Vector256.Load(x + 24) * w;
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
                if (weights[j] != 0) AddScaled(y + c, v + j * stride + c, weights[j], d - c);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void AddScaled(float* y, float* x, float weight, int n)
        {
            var i = 0;
            var w = Vector256.Create(weight);
            for (; i <= n - 8; i += 8)
                (Vector256.Load(y + i) + Vector256.Load(x + i) * w).Store(y + i);
            for (; i < n; i++)
                y[i] += x[i] * weight;
        }
    }
}
