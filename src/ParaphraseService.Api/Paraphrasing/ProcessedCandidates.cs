using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>A kept candidate and its scores (see <see cref="CandidatePostProcessor"/> for their definitions).</summary>
/// <param name="Text">The candidate, cut at the end marker and trimmed.</param>
/// <param name="Similarity">Cosine similarity of its MiniLM embedding with the source's: meaning preserved.</param>
/// <param name="Novelty">1 minus the Jaccard overlap of its words with the source's: wording changed.</param>
/// <param name="Score">What candidates are sorted by, best first.</param>
public sealed record ScoredCandidate(string Text, float Similarity, float Novelty, float Score);

/// <summary>The candidates kept, best first, and what was dropped.</summary>
public sealed record ProcessedCandidates(IReadOnlyList<ScoredCandidate> Candidates, DropCounts Dropped);
