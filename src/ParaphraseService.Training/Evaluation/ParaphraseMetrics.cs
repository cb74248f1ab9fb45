namespace ParaphraseService.Training.Evaluation;

/// <summary>One evaluated paraphrase: the input, a human paraphrase of it, and the model's paraphrase.</summary>
public sealed record ParaphraseExample(string Source, string Reference, string Candidate);

/// <summary>
/// Corpus scores of a set of paraphrases, all on the 0-100 scale.
/// </summary>
/// <param name="Bleu">BLEU of the candidates against the references: closeness to what a person wrote.</param>
/// <param name="SelfBleu">BLEU of the candidates against their sources: how much was copied (lower = more novel).</param>
/// <param name="IBleu">α·Bleu − (1−α)·SelfBleu: adequacy with a penalty for copying; may be negative.</param>
/// <param name="Count">Examples scored.</param>
public sealed record ParaphraseScores(double Bleu, double SelfBleu, double IBleu, int Count);

/// <summary>
/// Paraphrase metrics built on sacreBLEU-compatible <see cref="Evaluation.Bleu"/>. BLEU alone rewards
/// copying the input (the source is usually close to the reference), so we also report self-BLEU against the
/// source and iBLEU (Sun &amp; Zhou, 2012), which trades the two off.
/// </summary>
/// <remarks>
/// "Self-BLEU" here is the paraphrase-generation sense (candidate vs. its own source), not the Texygen
/// diversity metric (each candidate vs. the other candidates).
/// </remarks>
public static class ParaphraseMetrics
{
    /// <summary>
    /// iBLEU's α, the weight on BLEU against the references. 0.9 is the value most paraphrase-generation
    /// papers since Sun &amp; Zhou report with; some (e.g. Hosking &amp; Lapata, 2021) use 0.8, so every iBLEU
    /// function takes α as a parameter and results should always state it.
    /// </summary>
    public const double DefaultAlpha = 0.9;

    /// <summary>
    /// Corpus BLEU, self-BLEU and iBLEU of <paramref name="examples"/> with sacreBLEU's corpus defaults
    /// (<see cref="BleuOptions.Corpus"/> unless <paramref name="options"/> is given). An empty list scores 0s.
    /// </summary>
    public static ParaphraseScores Score(
        IReadOnlyList<ParaphraseExample> examples, double alpha = DefaultAlpha, BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var sources = new string[examples.Count];
        var references = new string[examples.Count];
        var candidates = new string[examples.Count];
        for (var i = 0; i < examples.Count; i++)
        {
            var example = examples[i] ?? throw new ArgumentException($"Example {i} is null.", nameof(examples));
            (sources[i], references[i], candidates[i]) = (example.Source, example.Reference, example.Candidate);
        }
        return Score(sources, references, candidates, alpha, options);
    }

    /// <summary>As <see cref="Score(IReadOnlyList{ParaphraseExample}, double, BleuOptions?)"/>, from parallel lists.</summary>
    public static ParaphraseScores Score(
        IReadOnlyList<string> sources,
        IReadOnlyList<string> references,
        IReadOnlyList<string> candidates,
        double alpha = DefaultAlpha,
        BleuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(candidates);
        ValidateAlpha(alpha);
        if (sources.Count != candidates.Count || references.Count != candidates.Count)
            throw new ArgumentException(
                $"Got {sources.Count} sources, {references.Count} references and {candidates.Count} candidates; "
                + "they must be parallel.", nameof(candidates));

        options ??= BleuOptions.Corpus;
        var bleu = Evaluation.Bleu.Corpus(candidates, references, options).Score;
        var selfBleu = Evaluation.Bleu.Corpus(candidates, sources, options).Score;
        return new ParaphraseScores(bleu, selfBleu, IBleu(bleu, selfBleu, alpha), candidates.Count);
    }

    /// <summary>Sentence BLEU of <paramref name="candidate"/> against <paramref name="reference"/> (sacreBLEU sentence defaults).</summary>
    public static double SentenceBleu(string reference, string candidate) =>
        Evaluation.Bleu.Sentence(candidate, reference).Score;

    /// <summary>Sentence BLEU of <paramref name="candidate"/> against its <paramref name="source"/>; lower = more novel.</summary>
    public static double SentenceSelfBleu(string source, string candidate) =>
        Evaluation.Bleu.Sentence(candidate, source).Score;

    /// <summary>Sentence iBLEU: α·BLEU(candidate, reference) − (1−α)·BLEU(candidate, source), sentence defaults.</summary>
    public static double SentenceIBleu(string source, string reference, string candidate, double alpha = DefaultAlpha)
    {
        ValidateAlpha(alpha);
        return IBleu(SentenceBleu(reference, candidate), SentenceSelfBleu(source, candidate), alpha);
    }

    /// <summary>iBLEU from already computed BLEU and self-BLEU: α·bleu − (1−α)·selfBleu.</summary>
    public static double IBleu(double bleu, double selfBleu, double alpha = DefaultAlpha)
    {
        ValidateAlpha(alpha);
        return alpha * bleu - (1 - alpha) * selfBleu;
    }

    private static void ValidateAlpha(double alpha)
    {
        if (!(alpha is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "iBLEU's alpha is a weight in [0, 1].");
    }
}
