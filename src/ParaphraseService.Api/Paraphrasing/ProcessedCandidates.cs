using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>A kept candidate and its scores (see <see cref="CandidatePostProcessor"/> for their definitions).</summary>
/// <param name="Text">The candidate, cut at the end marker and trimmed.</param>
/// <param name="Similarity">Cosine similarity of its MiniLM embedding with the source's: meaning preserved.</param>
/// <param name="Novelty">1 minus the Jaccard overlap of its words with the source's: wording changed.</param>
/// <param name="Score">What candidates are sorted by, best first.</param>
public sealed record ScoredCandidate(string Text, float Similarity, float Novelty, float Score);

/// <summary>What a caller requires of every candidate; unset parts require nothing.</summary>
/// <param name="MaxChars">At most this many characters.</param>
/// <param name="Keep">Terms that must each appear (case-insensitively).</param>
/// <param name="Avoid">Terms that must not appear (case-insensitively; decoding already bans them).</param>
/// <param name="MinSimilarity">At least this MiniLM similarity with the source.</param>
public sealed record CandidateConstraints(int? MaxChars = null, IReadOnlyList<string>? Keep = null, IReadOnlyList<string>? Avoid = null,
    float? MinSimilarity = null)
{
    public static CandidateConstraints None { get; } = new();
}

/// <summary>
/// Distinct candidates removed for not meeting the constraints, each counted under the first one it fails, in this
/// order.
/// </summary>
public sealed record RemovedCounts(int MaxChars, int Avoid, int Keep, int MinSimilarity)
{
    public int Total => MaxChars + Avoid + Keep + MinSimilarity;
}

/// <summary>The candidates kept, best first; how many were generated; what was dropped and what the constraints removed.</summary>
public sealed record ProcessedCandidates(IReadOnlyList<ScoredCandidate> Candidates, int Generated, DropCounts Dropped, RemovedCounts Removed);
