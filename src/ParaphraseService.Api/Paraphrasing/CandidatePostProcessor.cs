using ParaphraseService.Training.Prompts;
using System.Text.RegularExpressions;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>
/// Turns what the model generated into paraphrases: <see cref="CandidateFilter"/> cuts them at the template's end
/// marker and drops empties, copies of the source and duplicates; <see cref="CandidateConstraints"/> remove those too
/// long, holding an avoided term, lacking a kept one, or (once scored) too far in meaning; the rest are scored for
/// meaning (<see cref="ISentenceSimilarity"/>: cosine of MiniLM embeddings) and for <see cref="Novelty"/>, and sorted by
/// <see cref="Score"/>, best first; ties keep their generated order. Nothing else is dropped for a low score: the
/// caller sees every distinct candidate that meets the constraints, with its scores.
/// </summary>
public sealed partial class CandidatePostProcessor(ISentenceSimilarity similarity)
{
    /// <summary>Below this novelty a candidate is penalised (see <see cref="Score"/>).</summary>
    public const float MinNovelty = 0.2f;

    /// <summary>The penalty per unit of novelty below <see cref="MinNovelty"/>: 5, so a candidate of novelty 0 loses 1.</summary>
    public const float NoveltyPenaltySlope = 1f / MinNovelty;

    public ProcessedCandidates Process(string source, IReadOnlyList<string> rawCandidates, PromptTemplate template, CandidateConstraints? constraints = null)
    {
        var c = constraints ?? CandidateConstraints.None;
        var (distinct, dropped) = CandidateFilter.Apply(source, rawCandidates, template);
        int tooLong = 0, avoided = 0, missing = 0, farOff = 0;
        var kept = new List<string>();
        foreach (var text in distinct)
        {
            if (text.Length > c.MaxChars) tooLong++;
            else if (c.Avoid?.Any(term => text.Contains(term, StringComparison.OrdinalIgnoreCase)) == true) avoided++;
            else if (c.Keep?.All(term => text.Contains(term, StringComparison.OrdinalIgnoreCase)) == false) missing++;
            else kept.Add(text);
        }
        var similarities = similarity.Similarities(source, kept);
        var sourceWords = Words(source);
        var scored = new List<ScoredCandidate>();
        for (var i = 0; i < kept.Count; i++)
        {
            if (similarities[i] < c.MinSimilarity)
            {
                farOff++;
                continue;
            }
            var novelty = Novelty(Words(kept[i]), sourceWords);
            scored.Add(new ScoredCandidate(kept[i], similarities[i], novelty, Score(similarities[i], novelty)));
        }
        // OrderBy is stable: equal scores and similarities keep the generated order.
        var sorted = scored.OrderByDescending(s => s.Score).ThenByDescending(s => s.Similarity).ToArray();
        return new ProcessedCandidates(sorted, rawCandidates.Count, dropped, new RemovedCounts(tooLong, avoided, missing, farOff));
    }

    /// <summary>
    /// Similarity, less a penalty for too little change: <c>score = similarity − 5 · max(0, 0.2 − novelty)</c>. At
    /// novelty 0.2 or more the score is the similarity; at novelty 0 (the same words, e.g. reordered, which MiniLM
    /// cannot tell from the source) it is one less.
    /// </summary>
    public static float Score(float similarity, float novelty) =>
        similarity - NoveltyPenaltySlope * Math.Max(0f, MinNovelty - novelty);

    /// <summary>
    /// How much of the wording is new: the Jaccard distance of the two sets of words,
    /// <c>1 − |W(candidate) ∩ W(source)| / |W(candidate) ∪ W(source)|</c>, where W is the set of lowercased words
    /// (<see cref="Words"/>). 0 for the same words in any order, 1 for no word in common; 0 when neither has a word.
    /// </summary>
    public static float Novelty(string candidate, string source)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(source);
        return Novelty(Words(candidate), Words(source));
    }

    /// <summary>
    /// The distinct words of a text, lowercased (invariant culture): maximal runs of letters, marks and digits, with an
    /// apostrophe inside a word kept in it ("can't", "firm's"; ’ read as '). Punctuation and whitespace separate words.
    /// </summary>
    public static HashSet<string> Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match match in WordPattern().Matches(text))
            words.Add(match.Value.Replace('’', '\'').ToLowerInvariant());
        return words;
    }

    private static float Novelty(HashSet<string> candidate, HashSet<string> source)
    {
        var common = candidate.Count(source.Contains);
        var union = candidate.Count + source.Count - common;
        return union == 0 ? 0f : 1f - (float)common / union;
    }

    [GeneratedRegex(@"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")]
    private static partial Regex WordPattern();
}
