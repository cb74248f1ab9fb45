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

    /// <param name="allowedVocabulary">Ids at or above this have no text (GPT-J pads its embedding to 50400) and are never picked.</param>
    public TokenSampler(GenerationOptions options, int allowedVocabulary)
    {
        options.Validate();
        _options = options;
        _allowedVocabulary = allowedVocabulary;
        if (!options.Greedy)
            _random = new SplitMix64(unchecked((ulong)(options.Seed ?? Random.Shared.NextInt64(long.MinValue, long.MaxValue))));
    }

    /// <param name="logits">(V) fp32 logits of the next position.</param>
    /// <param name="history">Prompt and generated ids so far, for the repetition penalty.</param>
    /// <exception cref="SamplingException">The logits hold NaN or +∞.</exception>
    /// <param name="banned">Text this sequence must not produce: its tokens are removed before anything else.</param>
    public int Next(Tensor logits, IReadOnlyList<int> history, BannedText? banned = null)
    {
        using var scope = NewDisposeScope();
        // Sampling runs on the CPU: a 50k-entry row is cheap.
        var scores = logits.to(ScalarType.Float32, CPU).clone();
        if (scores.shape[0] > _allowedVocabulary)
            scores[TensorIndex.Slice(_allowedVocabulary)] = float.NegativeInfinity;
        if (!scores.max().isfinite().item<bool>())
            throw new SamplingException("The model produced logits that are not finite (NaN or infinity) for this sequence.");
        banned?.Mask(scores);
        if (!scores.max().isfinite().item<bool>())
            throw new SamplingException("Every token would produce banned text; this sequence cannot go on.");

        if (_options.RepetitionPenalty != 1.0 && history.Count > 0)
        {
            var seen = tensor(history.Distinct().Select(i => (long)i).ToArray());
            var penalty = (float)_options.RepetitionPenalty;
            // score = torch.gather(scores, 1, input_ids); torch.where(score < 0, score * penalty, score / penalty)
            var score = scores.gather(0, seen);
            scores.scatter_(0, seen, where(score.lt(0), score * penalty, score / penalty));
        }
        if (_options.Greedy)
            return (int)scores.argmax().item<long>();

        var scaled = scores / (float)_options.Temperature;
        // A temperature so small that the scaled logits overflow is greedy decoding in the limit.
        if (!scaled.max().isfinite().item<bool>())
            return (int)scores.argmax().item<long>();
        scores = scaled;
        if (_options.TopK > 0 && _options.TopK < scores.shape[0])
        {
            // indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
            var kth = scores.topk(_options.TopK).values[-1];
            scores = scores.masked_fill(scores.lt(kth), float.NegativeInfinity);
        }
        if (_options.TopP < 1.0)
        {
            // sorted ascending; remove tokens with cumulative probability <= 1 - top_p, always keeping the most likely
            var (sorted, order) = scores.sort(descending: false);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            var remove = cumulative.le(1 - _options.TopP);
            remove[-1] = false;
            scores = scores.masked_fill(remove.scatter(0, order, remove), float.NegativeInfinity);
        }
        return Draw(scores.softmax(-1));
    }

    /// <summary>
    /// One draw from <paramref name="probabilities"/> by inverting its cumulative sum at a uniform number of our own
    /// stream: torch.multinomial(p, 1) in distribution, with all 64 bits of the seed in play.
    /// </summary>
    private int Draw(Tensor probabilities)
    {
        var cumulative = probabilities.to(ScalarType.Float64).cumsum(0);
        var total = cumulative[-1].item<double>();
        // 53 random bits: uniform in [0, 1).
        var u = (_random!.Next() >> 11) * (1.0 / (1UL << 53));
        // The first index whose cumulative mass exceeds u·total: never a token of probability zero.
        var index = searchsorted(cumulative, tensor(u * total, ScalarType.Float64).unsqueeze(0), right: true)[0].item<long>();
        // u·total rounded up to the total: the last token that has any probability.
        return (int)(index < probabilities.shape[0] ? index : probabilities.gt(0).nonzero()[-1, 0].item<long>());
    }
}

/// <summary>A sequence's next token could not be chosen: its own fault (its logits), not its batch's.</summary>
public sealed class SamplingException(string message) : Exception(message);
