using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ParaphraseService.Model.Layers;
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
    private float[] _scores = [], _scaled = [];
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
            throw new SamplingException("The model produced logits that are not finite (NaN or infinity) for this sequence.");
        banned?.Mask(scores);
        if (!float.IsFinite(Max(scores)))
            throw new SamplingException("Every token would produce banned text; this sequence cannot go on.");

        if (_options.RepetitionPenalty != 1.0 && history.Count > 0)
        {
            var penalty = (float)_options.RepetitionPenalty;
            // score = torch.gather(scores, 1, input_ids); torch.where(score < 0, score * penalty, score / penalty)
            foreach (var id in history.Distinct())
                if (id >= 0 && id < scores.Length)
                    scores[id] = scores[id] < 0 ? scores[id] * penalty : scores[id] / penalty;
        }
        if (_options.Greedy)
            return ArgMax(scores);

        var temperature = (float)_options.Temperature;
        var scaled = Reused(ref _scaled, scores.Length);
        for (var i = 0; i < scores.Length; i++)
            scaled[i] = scores[i] / temperature;
        // A temperature so small that the scaled logits overflow is greedy decoding in the limit.
        if (!float.IsFinite(Max(scaled)))
            return ArgMax(scores);
        scores = scaled;
        if (_options.TopK > 0 && _options.TopK < scores.Length)
        {
            // indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
            var kth = KthLargest(scores, _options.TopK);
            for (var i = 0; i < scores.Length; i++)
                if (scores[i] < kth) scores[i] = float.NegativeInfinity;
        }
        var probabilities = Softmax(scores, Reused(ref _probabilities, scores.Length));
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

    /// <summary>The largest value; NaN if any is NaN. Eight lanes at a time: a greedy step reads 50k logits twice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Max(float[] values)
    {
        var i = 0;
        var max = float.NegativeInfinity;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            var (lanes, nan) = (Vector256.Create(float.NegativeInfinity), Vector256<float>.Zero);
            for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(values.AsSpan(i, Vector256<float>.Count));
                nan |= ~Vector256.Equals(v, v);
                // max(a, b) of lanes that hold no NaN (any NaN is reported below)
                lanes = Vector256.ConditionalSelect(Vector256.GreaterThan(v, lanes), v, lanes);
            }
            if (nan.ExtractMostSignificantBits() != 0) return float.NaN;
            for (var lane = 0; lane < Vector256<float>.Count; lane++)
                max = MathF.Max(max, lanes[lane]);
        }
        for (; i < values.Length; i++)
        {
            var v = values[i];
            if (float.IsNaN(v)) return float.NaN;
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

    private static float KthLargest(float[] values, int k)
    {
        var copy = (float[])values.Clone();
        Array.Sort(copy);
        return copy[^k];
    }

    /// <summary>Softmax in double precision, written into p; masked (−∞) entries get exactly 0.</summary>
    private static double[] Softmax(float[] scores, double[] p)
    {
        var max = Max(scores);
        var total = 0.0;
        for (var i = 0; i < scores.Length; i++)
            total += p[i] = float.IsNegativeInfinity(scores[i]) ? 0 : Math.Exp(scores[i] - max);
        for (var i = 0; i < p.Length; i++) p[i] /= total;
        return p;
    }

    /// <summary>
    /// Top-p as Hugging Face's processor does it (in ascending order, tokens whose cumulative probability stays at or
    /// below 1 − top_p are removed, the most likely always kept), which is: going down from the most likely, a token
    /// is kept while the tokens above it hold less than top_p. Only the tokens above a threshold holding at least
    /// top_p are sorted (a handful for a trained model), not the whole vocabulary.
    /// </summary>
    private static void RemoveOutsideNucleus(double[] probabilities, double topP)
    {
        var threshold = probabilities.Max();
        for (var halvings = 0; halvings < 1100 && probabilities.Where(q => q >= threshold).Sum() < topP; halvings++)
            threshold /= 2;
        var candidates = new List<int>();
        for (var i = 0; i < probabilities.Length; i++)
            if (probabilities[i] >= threshold && probabilities[i] > 0) candidates.Add(i);
        var order = candidates.ToArray();
        // Most likely first (Array.Sort is deterministic for the same input, ties included).
        var keys = order.Select(i => -probabilities[i]).ToArray();
        Array.Sort(keys, order);
        var kept = new bool[probabilities.Length];
        var above = 0.0;
        foreach (var i in order)
        {
            if (above >= topP) break;
            kept[i] = true;
            above += probabilities[i];
        }
        for (var i = 0; i < probabilities.Length; i++)
            if (!kept[i]) probabilities[i] = 0;
    }

    /// <summary>
    /// One draw from <paramref name="probabilities"/> by inverting its cumulative sum at a uniform number of our own
    /// stream: torch.multinomial(p, 1) in distribution, with all 64 bits of the seed in play.
    /// </summary>
    private int Draw(double[] probabilities)
    {
        var total = probabilities.Sum();
        // 53 random bits: uniform in [0, 1).
        var target = (_random!.Next() >> 11) * (1.0 / (1UL << 53)) * total;
        var cumulative = 0.0;
        var last = -1;
        for (var i = 0; i < probabilities.Length; i++)
        {
            if (probabilities[i] <= 0) continue;
            cumulative += probabilities[i];
            last = i;
            // The first index whose cumulative mass exceeds u·total: never a token of probability zero.
            if (cumulative > target) return i;
        }
        // u·total rounded up to the total: the last token that has any probability.
        return last;
    }
}

/// <summary>A sequence's next token could not be chosen: its own fault (its logits), not its batch's.</summary>
public sealed class SamplingException(string message) : Exception(message);
