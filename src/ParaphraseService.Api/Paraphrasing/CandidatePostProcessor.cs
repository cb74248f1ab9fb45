using ParaphraseService.Training.Prompts;
using System.Text.RegularExpressions;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>
/// Turns what the model generated into paraphrases: cut, filtered, scored and sorted.
/// <list type="number">
/// <item>Each raw candidate is cut at the template's end marker (<see cref="PromptTemplate.Cut"/>); nothing left: dropped as empty.</item>
/// <item>Compared after <see cref="Normalize"/> (trimmed, whitespace runs collapsed to one space, case ignored): the
/// source again is dropped as a copy; the same as an earlier kept candidate, as a duplicate (the first one stays).</item>
/// <item>The rest are scored for meaning (<see cref="ISentenceSimilarity"/>: cosine of MiniLM embeddings) and for
/// <see cref="Novelty"/>, and sorted by <see cref="Score"/>, best first; ties keep their generated order.</item>
/// </list>
/// Nothing is dropped for a low score: the caller sees every distinct candidate, with its scores.
/// </summary>
public sealed partial class CandidatePostProcessor(ISentenceSimilarity similarity)
{
    /// <summary>Below this novelty a candidate is penalised (see <see cref="Score"/>).</summary>
    public const float MinNovelty = 0.2f;

    /// <summary>The penalty per unit of novelty below <see cref="MinNovelty"/>: 5, so a candidate of novelty 0 loses 1.</summary>
    public const float NoveltyPenaltySlope = 1f / MinNovelty;

    public ProcessedCandidates Process(string source, IReadOnlyList<string> rawCandidates, PromptTemplate template)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rawCandidates);
        ArgumentNullException.ThrowIfNull(template);

        var normalizedSource = Normalize(source);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var kept = new List<string>();
        int empty = 0, copies = 0, duplicates = 0;
        foreach (var raw in rawCandidates)
        {
            var candidate = template.Cut(raw ?? "");
            if (candidate is null)
            {
                empty++;
                continue;
            }
            var normalized = Normalize(candidate);
            if (string.Equals(normalized, normalizedSource, StringComparison.OrdinalIgnoreCase))
                copies++;
            else if (!seen.Add(normalized))
                duplicates++;
            else
                kept.Add(candidate);
        }

        var similarities = similarity.Similarities(source, kept);
        var sourceWords = Words(source);
        var scored = kept.Select((text, i) =>
        {
            var novelty = Novelty(Words(text), sourceWords);
            return new ScoredCandidate(text, similarities[i], novelty, Score(similarities[i], novelty));
        });
        // OrderBy is stable: equal scores and similarities keep the generated order.
        var sorted = scored.OrderByDescending(c => c.Score).ThenByDescending(c => c.Similarity).ToArray();
        return new ProcessedCandidates(sorted, new DropCounts(empty, copies, duplicates));
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

    /// <summary>The text trimmed, with every run of whitespace as one space; comparisons of it also ignore case.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Whitespace().Replace(text.Trim(), " ");
    }

    private static float Novelty(HashSet<string> candidate, HashSet<string> source)
    {
        var common = candidate.Count(source.Contains);
        var union = candidate.Count + source.Count - common;
        return union == 0 ? 0f : 1f - (float)common / union;
    }

    [GeneratedRegex(@"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")]
    private static partial Regex WordPattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
