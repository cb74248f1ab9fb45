using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ParaphraseService.Model.Kernels;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Picks the next token of one sequence from its logits, applying Hugging Face's processors in its order:
/// repetition penalty, then temperature, top-k and top-p, then a draw from the sequence's own seeded stream (so a
/// row's output does not depend on which other rows share its batch, nor on the device that computed the logits).
/// Total for every valid option: extreme temperatures cannot produce NaN probabilities; logits that are NaN or +∞
/// (a broken model or adapter) raise <see cref="SamplingException"/> for this row only.
/// </summary>
public sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private readonly int _allowedVocabulary;
    private readonly SplitMix64? _random;
    // A row's working arrays, reused token after token: 50k logits are a 200 KB array, and a fresh one per token was a
    // large-object allocation whose first touch cost more than the whole choice.
    private float[] _scores = [], _scaled = [], _selection = [];
    private double[] _probabilities = [];

    /// <param name="allowedVocabulary">Ids at or above this have no text (GPT-J pads its embedding to 50400) and are never picked.</param>
    public TokenSampler(GenerationOptions options, int allowedVocabulary)
    {
        options.Validate();
        _options = options;
        _allowedVocabulary = allowedVocabulary;
        if (!options.Greedy)
            _random = new SplitMix64(unchecked((ulong)(options.Seed ?? Random.Shared.NextInt64(long.MinValue, long.MaxValue))));
    }

    /// <param name="logits">(V) logits of the next position.</param>
    /// <param name="history">Prompt and generated ids so far, for the repetition penalty.</param>
    /// <param name="banned">Text this sequence must not produce: its tokens are removed before anything else.</param>
    /// <exception cref="SamplingException">The logits hold NaN or +∞, or every token is banned.</exception>
    /// <remarks>
    /// The arithmetic runs on the row's values in managed code: a few passes over 50k floats take well under a
    /// millisecond on one core, where LibTorch's small ops each pay for waking its thread pool (measured 0.17 ms per
    /// greedy choice here, 24 ms through LibTorch's ops on 2 busy cores).
    /// </remarks>
    public int Next(Tensor logits, IReadOnlyList<int> history, BannedText? banned = null)
    {
        var scores = Copy(logits, ref _scores);
        if (scores.Length > _allowedVocabulary)
            scores.AsSpan(_allowedVocabulary).Fill(float.NegativeInfinity);
        if (!float.IsFinite(Max(scores)))
            throw new SamplingException("The model produced logits that are not finite (NaN or infinity) for this sequence.", notFinite: true);
        banned?.Mask(scores);
        if (!float.IsFinite(Max(scores)))
            throw new SamplingException("Every token would produce banned text; this sequence cannot go on.", notFinite: false);

        if (_options.RepetitionPenalty != 1.0 && history.Count > 0)
        {
            // Kept within float's range: a penalty of 1e-300 is 0 as a float, and 0 / 0 is NaN
            var penalty = (float)Math.Clamp(_options.RepetitionPenalty, float.Epsilon, float.MaxValue);
            // score = torch.gather(scores, 1, input_ids); torch.where(score < 0, score * penalty, score / penalty)
            foreach (var id in history.Distinct())
                if (id >= 0 && id < scores.Length)
                    scores[id] = scores[id] < 0 ? scores[id] * penalty : scores[id] / penalty;
        }
        if (_options.Greedy)
            return ArgMax(scores);

        // A temperature beyond float's range would be ∞, and −∞ / ∞ is NaN: the largest float flattens as well.
        var temperature = (float)Math.Min(_options.Temperature, float.MaxValue);
        var scaled = Divide(scores, temperature, Reused(ref _scaled, scores.Length));
        // A temperature so small that the scaled logits overflow is greedy decoding in the limit.
        var max = Max(scaled);
        if (!float.IsFinite(max))
            return ArgMax(scores);
        scores = scaled;
        if (_options.TopK > 0 && _options.TopK < scores.Length)
        {
            // indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
            var kth = KthLargest(scores, _options.TopK, ref _selection);
            for (var i = 0; i < scores.Length; i++)
                if (scores[i] < kth) scores[i] = float.NegativeInfinity;
        }
        // top-k keeps the largest, so max is still the largest
        var probabilities = Softmax(scores, max, Reused(ref _probabilities, scores.Length));
        if (_options.TopP < 1.0)
            RemoveOutsideNucleus(probabilities, _options.TopP);
        return Draw(probabilities);
    }

    // The row's values as a managed array, straight from its memory (TorchSharp's accessor took most of a greedy choice).
    private static unsafe float[] Copy(Tensor logits, ref float[] buffer)
    {
        using var row = logits.to(ScalarType.Float32, CPU).contiguous();
        var scores = Reused(ref buffer, checked((int)row.numel()));
        new ReadOnlySpan<float>(TensorMemory.Floats(row), scores.Length).CopyTo(scores);
        return scores;
    }

    private static T[] Reused<T>(ref T[] buffer, int length)
    {
        if (buffer.Length != length) buffer = new T[length];
        return buffer;
    }

    /// <summary>values / divisor into result, eight at a time (each quotient the same as one at a time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float[] Divide(float[] values, float divisor, float[] result)
    {
        var i = 0;
        for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
            (Vector256.Create(values.AsSpan(i, Vector256<float>.Count)) / divisor).CopyTo(result.AsSpan(i));
        for (; i < values.Length; i++)
            result[i] = values[i] / divisor;
        return result;
    }

    /// <summary>The largest value; NaN if any is NaN. Eight lanes at a time: a greedy step reads 50k logits twice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static T Max<T>(T[] values) where T : struct, IFloatingPointIeee754<T>
    {
        var i = 0;
        var max = T.NegativeInfinity;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<T>.Count)
        {
            var (lanes, nan) = (Vector256.Create(T.NegativeInfinity), Vector256<T>.Zero);
            for (; i + Vector256<T>.Count <= values.Length; i += Vector256<T>.Count)
            {
                var v = Vector256.Create(values.AsSpan(i, Vector256<T>.Count));
                nan |= ~Vector256.Equals(v, v);
                // max(a, b) of lanes that hold no NaN (any NaN is reported below)
                lanes = Vector256.ConditionalSelect(Vector256.GreaterThan(v, lanes), v, lanes);
            }
            if (nan.ExtractMostSignificantBits() != 0) return T.NaN;
            for (var lane = 0; lane < Vector256<T>.Count; lane++)
                max = T.Max(max, lanes[lane]);
        }
        for (; i < values.Length; i++)
        {
            var v = values[i];
            if (T.IsNaN(v)) return T.NaN;
            if (v > max) max = v;
        }
        return max;
    }

    /// <summary>The first index of the largest value, as torch.argmax (the values hold no NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ArgMax(float[] values)
    {
        var max = Max(values);
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var target = Vector256.Create(max);
            for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
            {
                var hits = Vector256.Equals(Vector256.Create(values.AsSpan(i, Vector256<float>.Count)), target).ExtractMostSignificantBits();
                if (hits != 0) return i + BitOperations.TrailingZeroCount(hits);
            }
        }
        for (; i < values.Length; i++)
            if (values[i] == max) return i;
        return 0;
    }

    /// <summary>The k-th largest value (what a sorted copy holds at [^k]), by selection in <paramref name="buffer"/> instead of a sort.</summary>
    internal static float KthLargest(float[] values, int k, ref float[] buffer)
    {
        var a = Reused(ref buffer, values.Length);
        values.CopyTo(a, 0);
        // Hoare's selection of the (n − k)-th smallest (the values hold no NaN).
        var (lo, hi, target) = (0, a.Length - 1, a.Length - k);
        while (lo < hi)
        {
            var pivot = a[lo + (hi - lo) / 2];
            var (i, j) = (lo, hi);
            while (i <= j)
            {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return a[target];
        }
        return a[target];
    }

    /// <summary>
    /// Softmax written into p: each exp in float (<see cref="VectorMath.Exp(Span{float}, float)"/>, in place on the
    /// scores, which are not read after), summed and normalized in double. Masked (−∞) entries, and any below e^-87.3
    /// times the largest, get exactly 0: with 50k tokens they hold less than 2^-53 of the mass, which no draw (53
    /// random bits) can land in.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double[] Softmax(float[] scores, float max, double[] p)
    {
        // p = exp(scores - max)
        VectorMath.Exp(scores, max);
        var sums = Vector256<double>.Zero;
        var i = 0;
        for (; i + Vector256<float>.Count <= scores.Length; i += Vector256<float>.Count)
        {
            var (low, high) = Vector256.Widen(Vector256.Create(scores.AsSpan(i, Vector256<float>.Count)));
            sums += low + high;
            low.CopyTo(p.AsSpan(i));
            high.CopyTo(p.AsSpan(i + Vector256<double>.Count));
        }
        var sum = Vector256.Sum(sums);
        for (; i < scores.Length; i++)
            sum += p[i] = scores[i];
        var total = Vector256.Create(sum);
        var j = 0;
        for (; j + Vector256<double>.Count <= p.Length; j += Vector256<double>.Count)
            (Vector256.Create(p.AsSpan(j, Vector256<double>.Count)) / total).CopyTo(p.AsSpan(j));
        for (; j < p.Length; j++) p[j] /= sum;
        return p;
    }

    /// <summary>
    /// Top-p as Hugging Face's processor does it (in ascending order, tokens whose cumulative probability stays at or
    /// below 1 − top_p are removed, the most likely always kept), which is: going down from the most likely, a token
    /// is kept while the tokens above it hold less than top_p (equal probabilities: the lower id first). Nothing is
    /// sorted but the few tokens around the cut: a flat distribution puts most of the vocabulary in the nucleus, and
    /// sorting it took milliseconds per token.
    /// </summary>
    internal static void RemoveOutsideNucleus(double[] probabilities, double topP)
    {
        var max = Max(probabilities);
        // The largest threshold max / 2^h whose tokens hold at least top_p, by an exponential then a binary search over
        // h (each probe one vectorized pass: the mass at or above a value). Past h = 1,100 (below any double) nothing
        // holds top_p (rounding, with top_p near 1): every token stays.
        const int maxHalvings = 1100;
        int low = -1, high = 0;
        while (MassFrom(probabilities, Math.ScaleB(max, -high)) < topP)
        {
            if (high == maxHalvings) return;
            (low, high) = (high, Math.Min(maxHalvings, Math.Max(1, 2 * high)));
        }
        while (high - low > 1)
        {
            var mid = (low + high) / 2;
            if (MassFrom(probabilities, Math.ScaleB(max, -mid)) >= topP) high = mid;
            else low = mid;
        }
        // The cut lies in [threshold, upper): the tokens at or above upper hold less than top_p, so each is kept. The band
        // is narrowed eight times by halves (the 256 value buckets of before), keeping that property.
        var threshold = Math.ScaleB(max, -high);
        var upper = high == 0 ? double.PositiveInfinity : 2 * threshold;
        if (high > 0)
            for (var step = 0; step < 8; step++)
            {
                var mid = threshold + (upper - threshold) / 2;
                if (MassFrom(probabilities, mid) >= topP) threshold = mid;
                else upper = mid;
            }
        // Tokens below the band go; those in it are taken most likely first (equal ones by id), kept while the tokens
        // above them hold less than top_p.
        var above = MassFrom(probabilities, upper);
        var inBand = new List<int>();
        for (var i = 0; i < probabilities.Length; i++)
        {
            var q = probabilities[i];
            if (q >= upper) continue;
            if (q >= threshold && q > 0) inBand.Add(i);
            else probabilities[i] = 0;
        }
        inBand.Sort((a, b) => probabilities[a] != probabilities[b] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        foreach (var i in inBand)
        {
            if (above >= topP) probabilities[i] = 0;
            else above += probabilities[i];
        }
    }

    /// <summary>The probability held by the tokens at or above <paramref name="from"/>, four lanes at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double MassFrom(double[] probabilities, double from)
    {
        var (at, sum0, sum1) = (Vector256.Create(from), Vector256<double>.Zero, Vector256<double>.Zero);
        const int lanes = 4;
        var i = 0;
        for (; i + 2 * lanes <= probabilities.Length; i += 2 * lanes)
        {
            var (a, b) = (Vector256.Create(probabilities.AsSpan(i, lanes)), Vector256.Create(probabilities.AsSpan(i + lanes, lanes)));
            sum0 += Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, at), a, Vector256<double>.Zero);
            sum1 += Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(b, at), b, Vector256<double>.Zero);
        }
        var sum = Vector256.Sum(sum0 + sum1);
        for (; i < probabilities.Length; i++)
            if (probabilities[i] >= from) sum += probabilities[i];
        return sum;
    }

    /// <summary>
    /// One draw from <paramref name="probabilities"/> by inverting its cumulative sum at a uniform number of our own
    /// stream: torch.multinomial(p, 1) in distribution, with all 64 bits of the seed in play.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int Draw(double[] probabilities)
    {
        const int block = 4;
        var sums = Vector256<double>.Zero;
        var i = 0;
        for (; i + block <= probabilities.Length; i += block)
            sums += Vector256.Create(probabilities.AsSpan(i, block));
        var total = Vector256.Sum(sums);
        for (; i < probabilities.Length; i++)
            total += probabilities[i];
        // 53 random bits: uniform in [0, 1).
        var target = (_random!.Next() >> 11) * (1.0 / (1UL << 53)) * total;
        // Whole blocks of four while the mass so far stays at or below the target, then token by token.
        var cumulative = 0.0;
        for (i = 0; i + block <= probabilities.Length; i += block)
        {
            var mass = Vector256.Sum(Vector256.Create(probabilities.AsSpan(i, block)));
            if (cumulative + mass > target) break;
            cumulative += mass;
        }
        for (; i < probabilities.Length; i++)
        {
            if (probabilities[i] <= 0) continue;
            cumulative += probabilities[i];
            // The first index whose cumulative mass exceeds u·total: never a token of probability zero.
            if (cumulative > target) return i;
        }
        // u·total rounded up to the total: the last token that has any probability.
        for (i = probabilities.Length - 1; i > 0 && probabilities[i] <= 0; i--) { }
        return i;
    }
}

/// <summary>A sequence's next token could not be chosen: its own fault (its logits, or its banned text), not its batch's.</summary>
/// <param name="notFinite">Its logits held NaN or +∞ (the model or its adapter broke); otherwise its banned text left no token.</param>
public sealed class SamplingException(string message, bool notFinite) : Exception(message)
{
    public bool NotFinite { get; } = notFinite;
}
