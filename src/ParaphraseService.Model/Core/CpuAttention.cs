using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ParaphraseService.Model.Layers;
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
        CpuKernels.Enabled && q.device_type == DeviceType.CPU && k.device_type == DeviceType.CPU && v.device_type == DeviceType.CPU
        && q.dtype == ScalarType.Float32 && k.dtype == ScalarType.Float32 && v.dtype == ScalarType.Float32
        && q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1
        && !is_grad_enabled();

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
                for (var j = 0; j < _s; j++)
                {
                    var score = float.MinValue;
                    if (allowed[j])
                    {
                        score = Dot(q, k + j * _kStride[2], _d);
                        foreach (var divisor in _divisors) score /= divisor;
                    }
                    scores[j] = score;
                    max = MathF.Max(max, score);
                }
                // attn_weights = softmax(attn_weights, dim=-1)
                var sum = 0f;
                for (var j = 0; j < _s; j++)
                {
                    scores[j] = MathF.Exp(scores[j] - max);
                    sum += scores[j];
                }
                // attn_output = torch.matmul(attn_weights, value), written straight into (B, T, H·D)
                var output = _context + ((long)row * _t + query) * _heads * _d + head * _d;
                new Span<float>(output, _d).Clear();
                for (var j = 0; j < _s; j++)
                {
                    var weight = scores[j] / sum;
                    if (weight != 0) AddScaled(output, v + j * _vStride[2], weight, _d);
                }
            }
        }

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
