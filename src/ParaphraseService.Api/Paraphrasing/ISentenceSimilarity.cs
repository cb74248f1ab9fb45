namespace ParaphraseService.Api.Paraphrasing;

/// <summary>How close in meaning sentences are. Implementations are thread-safe.</summary>
public interface ISentenceSimilarity
{
    /// <summary>
    /// The cosine similarity of <paramref name="source"/> with each candidate, in the candidates' order: about 1 for
    /// the same meaning, about 0 for unrelated sentences. Empty when there are no candidates.
    /// </summary>
    float[] Similarities(string source, IReadOnlyList<string> candidates);
}
