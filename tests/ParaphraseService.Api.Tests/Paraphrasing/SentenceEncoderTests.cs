using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Paraphrasing;

namespace ParaphraseService.Api.Tests.Paraphrasing;

public class SentenceEncoderTests(MiniLmFixture miniLm) : IClassFixture<MiniLmFixture>
{
    [Fact]
    public void ACloseParaphraseScoresHighAndAnUnrelatedSentenceLow()
    {
        var similarities = miniLm.Encoder.Similarities(Fox.Source, [Fox.Paraphrase, Fox.Unrelated]);

        Assert.True(similarities[0] > 0.8f, $"paraphrase: {similarities[0]}");
        Assert.True(similarities[1] < 0.3f, $"unrelated: {similarities[1]}");
        Assert.Equal(Fox.ParaphraseSimilarity, similarities[0], Fox.Tolerance);
        Assert.Equal(Fox.UnrelatedSimilarity, similarities[1], Fox.Tolerance);
    }

    [Fact]
    public void SwappingWhoDoesWhatScoresAsHighAsAParaphrase()
    {
        // MiniLM's known blindness: mean-pooled embeddings barely see word order, so a sentence with subject and object
        // swapped (a different meaning: PAWS's adversarial case) looks like a paraphrase. Novelty is what catches it.
        var similarity = miniLm.Encoder.Similarities(Fox.Source, [Fox.Swapped])[0];

        Assert.True(similarity > 0.9f, $"swapped: {similarity}");
        Assert.Equal(Fox.SwappedSimilarity, similarity, Fox.Tolerance);
    }

    [Fact]
    public void TheSameSentenceScoresOneAndNoCandidatesGiveNoSimilarities()
    {
        Assert.Equal(1f, miniLm.Encoder.Similarities(Fox.Source, [Fox.Source])[0], 1e-4f);
        Assert.Empty(miniLm.Encoder.Similarities(Fox.Source, []));
    }

    [Fact]
    public async Task ConcurrentCallsGetWhatTheyGetAlone()
    {
        string[] candidates = [Fox.Paraphrase, Fox.Unrelated, Fox.Swapped];
        var alone = candidates.Select(c => miniLm.Encoder.Similarities(Fox.Source, [c])[0]).ToArray();

        var together = await Task.WhenAll(Enumerable.Range(0, 24).Select(i =>
            Task.Run(() => (Index: i % 3, Similarity: miniLm.Encoder.Similarities(Fox.Source, [candidates[i % 3]])[0]))));

        foreach (var (index, similarity) in together)
            Assert.Equal(alone[index], similarity, 1e-5f);
    }

    [Fact]
    public void AddParaphrasingRegistersOneEncoderThatTheContainerDisposes()
    {
        var provider = new ServiceCollection().AddLogging().AddParaphrasing().BuildServiceProvider();
        var encoder = provider.GetRequiredService<SentenceEncoder>();
        Assert.Same(encoder, provider.GetRequiredService<ISentenceSimilarity>());
        Assert.Same(provider.GetRequiredService<CandidatePostProcessor>(), provider.GetRequiredService<CandidatePostProcessor>());
        Assert.True(encoder.CreationTime > TimeSpan.Zero);

        provider.Dispose();

        Assert.Throws<ObjectDisposedException>(() => encoder.Similarities(Fox.Source, [Fox.Paraphrase]));
    }
}
