using System.Runtime.InteropServices;

namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// BLEU (Papineni et al., 2002) computed the way sacreBLEU 2.x computes it (13a tokenization, clipped n-gram
/// counts against the per-order maximum over references, closest reference length with ties to the shorter,
/// corpus statistics summed before the geometric mean), so our numbers can sit next to published ones.
/// Scores are on sacreBLEU's 0-100 scale.
/// </summary>
public static class Bleu
{
    /// <summary>Corpus BLEU with one reference per hypothesis (sacreBLEU corpus defaults unless given).</summary>
    public static BleuScore Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        RequireSameCount(hypotheses.Count, references.Count, nameof(references));
        var statistics = new Statistics(options ?? BleuOptions.Corpus);
        var single = new string[1];
        for (var i = 0; i < hypotheses.Count; i++)
        {
            single[0] = references[i];
            statistics.Add(hypotheses[i], single);
        }
        return statistics.Score();
    }

    /// <summary>
    /// Corpus BLEU with any number (at least one) of references per hypothesis: <paramref name="references"/>[i]
    /// holds hypothesis i's references. (sacreBLEU takes reference streams instead; this is its transpose.)
    /// </summary>
    public static BleuScore Corpus(
        IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(hypotheses);
        ArgumentNullException.ThrowIfNull(references);
        RequireSameCount(hypotheses.Count, references.Count, nameof(references));
        var statistics = new Statistics(options ?? BleuOptions.Corpus);
        for (var i = 0; i < hypotheses.Count; i++)
            statistics.Add(hypotheses[i], references[i]);
        return statistics.Score();
    }

    /// <summary>Sentence BLEU against one reference (sacreBLEU <c>sentence_bleu</c> defaults unless given).</summary>
    public static BleuScore Sentence(string hypothesis, string reference, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return Sentence(hypothesis, [reference], options);
    }

    /// <summary>Sentence BLEU against several references (sacreBLEU <c>sentence_bleu</c> defaults unless given).</summary>
    public static BleuScore Sentence(string hypothesis, IReadOnlyList<string> references, BleuOptions? options = null)
    {
        var statistics = new Statistics(options ?? BleuOptions.Sentence);
        statistics.Add(hypothesis, references);
        return statistics.Score();
    }

    /// <summary>
    /// sacreBLEU's <c>BLEU.compute_bleu</c>: the score from summed statistics. Kept line for line (including the
    /// early 0 when nothing matches and the log floor for zero precisions) because the edge cases are where
    /// implementations disagree.
    /// </summary>
    internal static BleuScore Compute(int[] correct, int[] total, int hypothesisLength, int referenceLength, BleuOptions options)
    {
        var order = options.MaxNgramOrder;
        var brevityPenalty = 1.0;
        if (hypothesisLength < referenceLength)
            brevityPenalty = hypothesisLength > 0 ? Math.Exp(1 - (double)referenceLength / hypothesisLength) : 0.0;

        var precisions = new double[order];
        if (Array.TrueForAll(correct, c => c == 0))
            return new BleuScore(0.0, brevityPenalty, hypothesisLength, referenceLength, correct, total, precisions);

        var smoothValue = options.EffectiveSmoothValue;
        var smoothMteval = 1.0;
        var effectiveOrder = order;
        for (var n = 1; n <= order; n++)
        {
            double matches = correct[n - 1], count = total[n - 1];
            if (options.Smoothing == BleuSmoothing.AddK && n > 1)
            {
                matches += smoothValue;
                count += smoothValue;
            }
            if (count == 0)
                break;
            if (options.EffectiveOrder)
                effectiveOrder = n;

            if (matches == 0)
            {
                if (options.Smoothing == BleuSmoothing.Exp)
                {
                    smoothMteval *= 2;
                    precisions[n - 1] = 100.0 / (smoothMteval * count);
                }
                else if (options.Smoothing == BleuSmoothing.Floor)
                {
                    precisions[n - 1] = 100.0 * smoothValue / count;
                }
            }
            else
            {
                precisions[n - 1] = 100.0 * matches / count;
            }
        }

        var logSum = 0.0;
        for (var n = 0; n < effectiveOrder; n++)
            logSum += precisions[n] == 0.0 ? -9999999999 : Math.Log(precisions[n]); // sacreBLEU's my_log floor
        var score = brevityPenalty * Math.Exp(logSum / effectiveOrder);
        return new BleuScore(score, brevityPenalty, hypothesisLength, referenceLength, correct, total, precisions);
    }

    private static void RequireSameCount(int hypotheses, int references, string parameter)
    {
        if (hypotheses != references)
            throw new ArgumentException(
                $"Got {hypotheses} hypotheses but {references} references; each hypothesis needs its own.", parameter);
    }

    /// <summary>
    /// Sums sacreBLEU's per-segment statistics (lengths, clipped matches and totals per order). Tokens become
    /// ids and n-grams are (id array, start, length) views, so counting allocates no string per n-gram.
    /// </summary>
    private sealed class Statistics
    {
        private readonly BleuOptions _options;
        private readonly int[] _correct;
        private readonly int[] _total;
        private readonly Dictionary<string, int> _vocabulary = new(StringComparer.Ordinal);
        private readonly Dictionary<Ngram, int> _referenceCounts = [];
        private readonly Dictionary<Ngram, int> _oneReference = [];
        private readonly Dictionary<Ngram, int> _hypothesisCounts = [];
        private int _hypothesisLength;
        private int _referenceLength;

        public Statistics(BleuOptions options)
        {
            ArgumentNullException.ThrowIfNull(options);
            options.Validate();
            _options = options;
            _correct = new int[options.MaxNgramOrder];
            _total = new int[options.MaxNgramOrder];
        }

        public void Add(string hypothesis, IReadOnlyList<string> references)
        {
            ArgumentNullException.ThrowIfNull(hypothesis);
            ArgumentNullException.ThrowIfNull(references);
            if (references.Count == 0)
                throw new ArgumentException("Every hypothesis needs at least one reference.", nameof(references));

            // Per-order maximum count of each n-gram over the references (sacreBLEU's _extract_reference_info).
            _referenceCounts.Clear();
            var hypothesisIds = ToIds(hypothesis);
            var closestLength = -1;
            for (var r = 0; r < references.Count; r++)
            {
                var reference = references[r] ?? throw new ArgumentException("A reference is null.", nameof(references));
                var ids = ToIds(reference);
                closestLength = Closer(hypothesisIds.Length, closestLength, ids.Length);
                Count(ids, _oneReference);
                foreach (var (ngram, count) in _oneReference)
                {
                    ref var best = ref CollectionsMarshal.GetValueRefOrAddDefault(_referenceCounts, ngram, out _);
                    best = Math.Max(best, count);
                }
            }

            Count(hypothesisIds, _hypothesisCounts);
            foreach (var (ngram, count) in _hypothesisCounts)
            {
                _total[ngram.Length - 1] += count;
                if (_referenceCounts.TryGetValue(ngram, out var referenceCount))
                    _correct[ngram.Length - 1] += Math.Min(count, referenceCount);
            }
            _hypothesisLength += hypothesisIds.Length;
            _referenceLength += closestLength;
        }

        public BleuScore Score() => Compute(_correct, _total, _hypothesisLength, _referenceLength, _options);

        /// <summary>sacreBLEU's _get_closest_ref_len, one reference at a time: nearest length, ties to the shorter.</summary>
        private static int Closer(int hypothesisLength, int closest, int candidate)
        {
            if (closest < 0)
                return candidate;
            int closestDiff = Math.Abs(hypothesisLength - closest), diff = Math.Abs(hypothesisLength - candidate);
            return diff < closestDiff || (diff == closestDiff && candidate < closest) ? candidate : closest;
        }

        private int[] ToIds(string segment)
        {
            if (_options.Lowercase)
                segment = segment.ToLowerInvariant();
            var tokenized = Tokenizer13a.Tokenize(segment);
            if (tokenized.Length == 0)
                return [];
            // The tokenizer leaves exactly one space between tokens, none at the ends.
            var tokens = tokenized.Split(' ');
            var ids = new int[tokens.Length];
            for (var i = 0; i < tokens.Length; i++)
            {
                ref var id = ref CollectionsMarshal.GetValueRefOrAddDefault(_vocabulary, tokens[i], out var exists);
                if (!exists)
                    id = _vocabulary.Count - 1;
                ids[i] = id;
            }
            return ids;
        }

        private void Count(int[] ids, Dictionary<Ngram, int> counts)
        {
            counts.Clear();
            for (var n = 1; n <= _options.MaxNgramOrder; n++)
            {
                for (var start = 0; start + n <= ids.Length; start++)
                    CollectionsMarshal.GetValueRefOrAddDefault(counts, new Ngram(ids, start, n), out _)++;
            }
        }
    }

    /// <summary>An n-gram as a view into a segment's token ids; equal when the id sequences are equal.</summary>
    private readonly struct Ngram(int[] ids, int start, int length) : IEquatable<Ngram>
    {
        public int Length => length;

        private ReadOnlySpan<int> Span => ids.AsSpan(start, length);

        public bool Equals(Ngram other) => length == other.Length && Span.SequenceEqual(other.Span);

        public override bool Equals(object? obj) => obj is Ngram other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(Span));
            return hash.ToHashCode();
        }
    }
}
