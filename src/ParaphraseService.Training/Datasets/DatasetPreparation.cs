using ParaphraseService.Model.Generation;
using System.Text;

namespace ParaphraseService.Training.Datasets;

/// <summary>
/// Turns pairs as read into train and eval sets, in this order:
/// <list type="number">
/// <item>normalize both sides (<see cref="Normalize"/>);</item>
/// <item>drop copies (target equals source, ignoring case: a case-only change teaches copying, and the service drops
/// such candidates too), then exact duplicates of an earlier pair, then pairs with a side over
/// <see cref="DatasetPreparationOptions.MaxCharsPerSide"/> or <see cref="DatasetPreparationOptions.MaxTokensPerSide"/>, or
/// whose training example is over <see cref="DatasetPreparationOptions.MaxTokensPerExample"/>;</item>
/// <item>keep a seeded random sample of <see cref="DatasetPreparationOptions.SampleSize"/> pairs;</item>
/// <item>split off about <see cref="DatasetPreparationOptions.EvalFraction"/> for evaluation, seeded, so that no eval
/// sentence is also in a train pair (see <see cref="Prepare(DatasetReadResult, DatasetPreparationOptions?, string)"/>).</item>
/// </list>
/// </summary>
public static class DatasetPreparation
{
    private const uint SampleStream = 1;
    private const uint SplitStream = 2;

    /// <summary>
    /// Prepares what <see cref="ParaphraseDatasetReader"/> read. The split keeps sentences apart: pairs that share a
    /// sentence (compared normalized, ignoring case; both directions of a row, or PAWS's many rewrites of one sentence)
    /// form a group, and whole groups go to eval, in a seeded random order, while taking one brings the eval count
    /// closer to <c>max(1, round(n · EvalFraction))</c>, never leaving train empty. Only when one group holds every
    /// pair are pairs split one by one (<see cref="DatasetSummary.EvalSharesSentencesWithTrain"/>).
    /// </summary>
    /// <exception cref="DatasetException">No pair is left after filtering.</exception>
    public static PreparedDataset Prepare(DatasetReadResult read, DatasetPreparationOptions? options = null, string name = "dataset")
    {
        ArgumentNullException.ThrowIfNull(read);
        return Prepare(read.Pairs, options ?? new DatasetPreparationOptions(), name, new ReadCounts(read.Format, read.RowsRead,
            read.ParaphraseRows, read.NonParaphrasesSkipped, read.MalformedRowsSkipped, read.BothDirections, read.Problems, read.LabelColumn, read.LabelValues));
    }

    /// <summary>Prepares pairs that did not come from a file (each counts as a row read). A pair with an empty side is
    /// refused with a <see cref="DatasetException"/> naming it (<c>pair 3: empty target</c>, 1-based).</summary>
    public static PreparedDataset Prepare(IReadOnlyList<ParaphrasePair> pairs, DatasetPreparationOptions? options = null, string name = "pairs")
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var problems = new List<string>();
        var count = 0;
        for (var i = 0; i < pairs.Count; i++)
        {
            foreach (var (side, text) in new[] { ("source", pairs[i]?.Source), ("target", pairs[i]?.Target) })
            {
                if (!string.IsNullOrWhiteSpace(text))
                    continue;
                if (++count <= ParaphraseDatasetReader.MaxReportedProblems)
                    problems.Add($"pair {i + 1}: empty {side}");
            }
        }
        if (count > 0)
            throw new DatasetException(name, problems, count);
        if (pairs.Count == 0)
            throw new DatasetException(name, "no pairs");
        return Prepare(pairs, options ?? new DatasetPreparationOptions(), name,
            new ReadCounts(null, pairs.Count, pairs.Count, 0, 0, false, [], null, null));
    }

    /// <summary>
    /// Unicode NFC (so "é" typed two ways is one text), every run of white space (tabs, line breaks, no-break
    /// spaces) made one space, trimmed. Line breaks must go: the prompt template ends a paraphrase at a newline.
    /// </summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var composed = text.IsNormalized(NormalizationForm.FormC) ? text : text.Normalize(NormalizationForm.FormC);
        var builder = new StringBuilder(composed.Length);
        var space = false;
        foreach (var c in composed)
        {
            if (char.IsWhiteSpace(c))
            {
                space = builder.Length > 0;
                continue;
            }
            if (space)
                builder.Append(' ');
            space = false;
            builder.Append(c);
        }
        return builder.ToString();
    }

    private static PreparedDataset Prepare(IReadOnlyList<ParaphrasePair> pairs, DatasetPreparationOptions options, string name, ReadCounts read)
    {
        Validate(options);

        var kept = new List<ParaphrasePair>(pairs.Count);
        var seen = new HashSet<(string, string)>();
        int copies = 0, duplicates = 0, tooLong = 0;
        foreach (var pair in pairs)
        {
            var source = Normalize(pair.Source);
            var target = Normalize(pair.Target);
            if (string.Equals(source, target, StringComparison.OrdinalIgnoreCase))
                copies++;
            else if (!seen.Add((source, target)))
                duplicates++;
            else if (TooLong(source, options) || TooLong(target, options) || TooLong(new ParaphrasePair(source, target), options))
                tooLong++;
            else
                kept.Add(new ParaphrasePair(source, target));
        }
        if (kept.Count == 0)
        {
            var limit = options.MaxTokensPerExample is { } max ? $" (over {max} tokens with the prompt, or a side over the length limit)" : "";
            throw new DatasetException(name,
                $"no pairs left to train on: of {pairs.Count} pairs, {copies} were copies of their source, {duplicates} duplicates, {tooLong} too long{limit}");
        }

        var sample = Sample(kept, options.SampleSize, options.Seed);
        var (train, eval, mixed) = Split(sample, options.EvalFraction, options.Seed);
        var summary = new DatasetSummary
        {
            Format = read.Format,
            RowsRead = read.RowsRead,
            ParaphraseRows = read.ParaphraseRows,
            NonParaphrasesSkipped = read.NonParaphrasesSkipped,
            MalformedRowsSkipped = read.MalformedRowsSkipped,
            BothDirections = read.BothDirections,
            PairsRead = pairs.Count,
            CopiesDropped = copies,
            DuplicatesDropped = duplicates,
            TooLongDropped = tooLong,
            NotSampled = kept.Count - sample.Count,
            TrainCount = train.Count,
            EvalCount = eval.Count,
            EvalSharesSentencesWithTrain = mixed,
            Seed = options.Seed,
            Problems = read.Problems,
            LabelColumn = read.LabelColumn,
            LabelValues = read.LabelValues,
            MaxTokensPerExample = options.MaxTokensPerExample,
        };
        return new PreparedDataset(train, eval, summary);
    }

    private static void Validate(DatasetPreparationOptions options)
    {
        if (options.MaxCharsPerSide is { } chars)
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chars, nameof(options.MaxCharsPerSide));
        if (options.MaxTokensPerSide is { } tokens)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens, nameof(options.MaxTokensPerSide));
            if (options.TokenCounter is null)
                throw new ArgumentException($"{nameof(options.MaxTokensPerSide)} needs a {nameof(options.TokenCounter)}.", nameof(options));
        }
        if (options.MaxTokensPerExample is { } perExample)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perExample, nameof(options.MaxTokensPerExample));
            if (options.ExampleTokenCounter is null)
                throw new ArgumentException($"{nameof(options.MaxTokensPerExample)} needs an {nameof(options.ExampleTokenCounter)}.", nameof(options));
        }
        if (options.SampleSize is { } size)
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size, nameof(options.SampleSize));
        if (!(options.EvalFraction is >= 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(options), options.EvalFraction, $"{nameof(options.EvalFraction)} must be in [0, 1).");
    }

    private static bool TooLong(ParaphrasePair pair, DatasetPreparationOptions options) =>
        options.MaxTokensPerExample is { } max && options.ExampleTokenCounter!(pair) > max;

    private static bool TooLong(string text, DatasetPreparationOptions options) =>
        text.Length > options.MaxCharsPerSide
        || (options.MaxTokensPerSide is { } max && options.TokenCounter!(text) > max);

    /// <summary>A seeded uniform sample of <paramref name="size"/> pairs, in their original order.</summary>
    private static List<ParaphrasePair> Sample(List<ParaphrasePair> pairs, int? size, int seed)
    {
        if (size is not { } n || n >= pairs.Count)
            return pairs;
        var indices = Enumerable.Range(0, pairs.Count).ToArray();
        SplitMix64.For(seed, SampleStream).Shuffle(indices, n);
        Array.Sort(indices, 0, n);
        return [.. indices.Take(n).Select(i => pairs[i])];
    }

    private static (List<ParaphrasePair> Train, List<ParaphrasePair> Eval, bool Mixed) Split(List<ParaphrasePair> pairs, double fraction, int seed)
    {
        var n = pairs.Count;
        var target = fraction > 0 && n >= 2 ? Math.Clamp((int)Math.Round(n * fraction, MidpointRounding.AwayFromZero), 1, n - 1) : 0;
        if (target == 0)
            return (pairs, [], false);

        var group = SentenceGroups(pairs, out var groupCount);
        var sizes = new int[groupCount];
        foreach (var g in group)
            sizes[g]++;
        var rng = SplitMix64.For(seed, SplitStream);
        var toEval = new bool[groupCount];
        var mixed = groupCount == 1;
        if (!mixed)
        {
            var order = Enumerable.Range(0, groupCount).ToArray();
            rng.Shuffle(order, groupCount);
            var evalCount = 0;
            foreach (var g in order)
            {
                // Take a group while it brings the count closer to the target: |e + s − t| < |e − t| ⟺ 2(t − e) > s.
                if (2 * (target - evalCount) > sizes[g] && evalCount + sizes[g] < n)
                {
                    toEval[g] = true;
                    evalCount += sizes[g];
                }
            }
            if (evalCount == 0)
            {
                // Every group is over twice the target: the smallest one, the first of them in the shuffled order.
                var smallest = order.MinBy(g => sizes[g]);
                toEval[smallest] = true;
            }
        }

        List<ParaphrasePair> train = [], eval = [];
        if (mixed)
        {
            var indices = Enumerable.Range(0, n).ToArray();
            rng.Shuffle(indices, target);
            var chosen = new HashSet<int>(indices.Take(target));
            for (var i = 0; i < n; i++)
                (chosen.Contains(i) ? eval : train).Add(pairs[i]);
        }
        else
        {
            for (var i = 0; i < n; i++)
                (toEval[group[i]] ? eval : train).Add(pairs[i]);
        }
        return (train, eval, mixed);
    }

    /// <summary>For each pair, its group: pairs are in one group when they share a sentence, directly or through others
    /// (union-find over sentences compared ignoring case). Groups are numbered in the order of their first pair.</summary>
    private static int[] SentenceGroups(List<ParaphrasePair> pairs, out int groupCount)
    {
        var ids = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var parent = new List<int>();
        int Id(string sentence)
        {
            if (!ids.TryGetValue(sentence, out var id))
            {
                id = parent.Count;
                ids.Add(sentence, id);
                parent.Add(id);
            }
            return id;
        }
        int Find(int x)
        {
            while (parent[x] != x)
                x = parent[x] = parent[parent[x]];
            return x;
        }

        for (var i = 0; i < pairs.Count; i++)
        {
            int a = Find(Id(pairs[i].Source)), b = Find(Id(pairs[i].Target));
            if (a != b)
                parent[Math.Max(a, b)] = Math.Min(a, b);
        }
        var numbers = new Dictionary<int, int>();
        var group = new int[pairs.Count];
        for (var i = 0; i < pairs.Count; i++)
        {
            var root = Find(Id(pairs[i].Source));
            if (!numbers.TryGetValue(root, out var number))
                numbers.Add(root, number = numbers.Count);
            group[i] = number;
        }
        groupCount = numbers.Count;
        return group;
    }

    private readonly record struct ReadCounts(DatasetFormat? Format, int RowsRead, int ParaphraseRows, int NonParaphrasesSkipped,
        int MalformedRowsSkipped, bool BothDirections, IReadOnlyList<string> Problems, string? LabelColumn, IReadOnlyList<string>? LabelValues);
}
