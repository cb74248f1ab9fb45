using ParaphraseService.Api.Paraphrasing;

namespace ParaphraseService.Api.Tests.Paraphrasing;

/// <summary>The real MiniLM encoder, created once per test class (loading the model takes a few hundred ms).</summary>
public sealed class MiniLmFixture : IDisposable
{
    public SentenceEncoder Encoder { get; } = new();

    public void Dispose() => Encoder.Dispose();
}

/// <summary>The sentences FACTS.md reports MiniLM similarities for, with those similarities.</summary>
internal static class Fox
{
    public const string Source = "The quick brown fox jumps over the lazy dog.";
    public const string Paraphrase = "A fast brown fox leaps over a lazy dog.";
    public const float ParaphraseSimilarity = 0.941f;
    public const string Unrelated = "Stock markets fell sharply on Monday.";
    public const float UnrelatedSimilarity = 0.100f;
    public const string Swapped = "The lazy dog jumps over the quick brown fox.";
    public const float SwappedSimilarity = 0.958f;

    /// <summary>How far from FACTS.md's three decimals a figure may be (ONNX Runtime versions differ in the last digits).</summary>
    public const float Tolerance = 0.005f;
}
