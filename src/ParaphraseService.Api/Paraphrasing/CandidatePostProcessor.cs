using ParaphraseService.Training.Prompts;
using System.Text.RegularExpressions;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>
/// Turns what the model generated into paraphrases: <see cref="CandidateFilter"/> cuts them at the template's end
/// marker and drops empties, copies of the source and duplicates; the rest are scored for meaning
/// (<see cref="ISentenceSimilarity"/>: cosine of MiniLM embeddings) and for <see cref="Novelty"/>, and sorted by
/// <see cref="Score"/>, best first; ties keep their generated order. Nothing is dropped for a low score: the caller
/// sees every distinct candidate, with its scores.
/// </summary>
public sealed partial class CandidatePostProcessor(ISentenceSimilarity similarity)
{
    /// <summary>Below this novelty a candidate is penalised (see <see cref="Score"/>).</summary>
    public const float MinNovelty = 0.2f;

    /// <summary>The penalty per unit of novelty below <see cref="MinNovelty"/>: 5, so a candidate of novelty 0 loses 1.</summary>
    public const float NoveltyPenaltySlope = 1f / MinNovelty;

    public ProcessedCandidates Process(string source, IReadOnlyList<string> rawCandidates, PromptTemplate template)
    {
        var (kept, dropped) = CandidateFilter.Apply(source, rawCandidates, template);
        var similarities = similarity.Similarities(source, kept);
        var sourceWords = Words(source);
        var scored = kept.Select((text, i) =>
        {
            var novelty = Novelty(Words(text), sourceWords);
            return new ScoredCandidate(text, similarities[i], novelty, Score(similarities[i], novelty));
        });
        // OrderBy is stable: equal scores and similarities keep the generated order.
        var sorted = scored.OrderByDescending(c => c.Score).ThenByDescending(c => c.Similarity).ToArray();
        return new ProcessedCandidates(sorted, dropped);
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
