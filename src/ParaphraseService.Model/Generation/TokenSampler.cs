using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Picks the next token of one sequence from its logits, applying Hugging Face's processors in its order:
/// repetition penalty, then temperature, top-k and top-p, then a draw from the sequence's own seeded generator
/// (so a row's output does not depend on which other rows share its batch).
/// </summary>
public sealed class TokenSampler : IDisposable
{
    private readonly GenerationOptions _options;
    private readonly int _allowedVocabulary;
    private readonly Generator? _generator;

    /// <param name="allowedVocabulary">Ids at or above this have no text (GPT-J pads its embedding to 50400) and are never picked.</param>
    public TokenSampler(GenerationOptions options, int allowedVocabulary)
    {
        options.Validate();
        _options = options;
        _allowedVocabulary = allowedVocabulary;
        if (!options.Greedy)
            _generator = new Generator((ulong)(options.Seed ?? Random.Shared.NextInt64()), CPU);
    }

    /// <param name="logits">(V) fp32 logits of the next position.</param>
    /// <param name="history">Prompt and generated ids so far, for the repetition penalty.</param>
    public int Next(Tensor logits, IReadOnlyList<int> history)
    {
        using var scope = NewDisposeScope();
        // Sampling runs on the CPU: a 50k-entry row is cheap, and the CPU generator gives the same draws whatever
        // device computed the logits.
        var scores = logits.to(ScalarType.Float32, CPU).clone();
        if (scores.shape[0] > _allowedVocabulary)
            scores[TensorIndex.Slice(_allowedVocabulary)] = float.NegativeInfinity;

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

        scores /= (float)_options.Temperature;
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
        var probabilities = scores.softmax(-1);
        return (int)multinomial(probabilities, 1, generator: _generator).item<long>();
    }

    public void Dispose() => _generator?.Dispose();
}
