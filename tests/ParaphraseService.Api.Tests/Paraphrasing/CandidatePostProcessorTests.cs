using ParaphraseService.Training.Prompts;
using ParaphraseService.Api.Paraphrasing;

namespace ParaphraseService.Api.Tests.Paraphrasing;

public class CandidatePostProcessorTests(MiniLmFixture miniLm) : IClassFixture<MiniLmFixture>
{
    private readonly CandidatePostProcessor _processor = new(miniLm.Encoder);

    [Theory]
    // The same eight words in another order: nothing new.
    [InlineData(Fox.Swapped, Fox.Source, 0f)]
    // {a, fast, brown, fox, leaps, over, lazy, dog} vs {the, quick, brown, fox, jumps, over, lazy, dog}: 5 shared of 11.
    [InlineData(Fox.Paraphrase, Fox.Source, 6f / 11)]
    // One word changed: 7 shared of 9.
    [InlineData("The quick brown fox jumped over the lazy dog.", Fox.Source, 2f / 9)]
    [InlineData(Fox.Unrelated, Fox.Source, 1f)]
    // Case and punctuation are not words; an apostrophe inside a word is, curly or straight: {i, can't} of {i, can't, go, leave}.
    [InlineData("I CAN'T go!", "i can’t leave", 0.5f)]
    // Repeated words count once: {the, dog} of {the, dog, barked}.
    [InlineData("The dog, the dog.", "The dog barked.", 1f / 3)]
    [InlineData("...", "", 0f)]
    [InlineData("Hello", "...", 1f)]
    public void NoveltyIsOneMinusTheWordOverlap(string candidate, string source, float expected) =>
        Assert.Equal(expected, CandidatePostProcessor.Novelty(candidate, source), 1e-6f);

    [Theory]
    [InlineData(0.9f, 0.5f, 0.9f)]
    [InlineData(0.9f, 0.2f, 0.9f)]
    [InlineData(0.9f, 0.1f, 0.4f)]
    [InlineData(0.958f, 0f, -0.042f)]
    public void TheScoreIsTheSimilarityLessAPenaltyBelowNoveltyPointTwo(float similarity, float novelty, float expected) =>
        Assert.Equal(expected, CandidatePostProcessor.Score(similarity, novelty), 1e-6f);

    [Fact]
    public void CopiesDuplicatesAndEmptiesAreDroppedAndCounted()
    {
        string[] raw =
        [
            " The quick brown fox jumps over the lazy dog.\nOriginal: something else", // copy
            "the QUICK  brown fox\tjumps over the lazy   DOG.  ",                     // copy: case and whitespace
            " A fast brown fox leaps over a lazy dog.\n\nOriginal:",                  // kept
            "\nA line after the end marker",                                          // empty
            "a fast brown fox leaps over\na lazy dog.",                               // cut at the newline: kept
            "  A FAST brown fox  leaps over a lazy dog.",                             // duplicate of the first kept
            "",                                                                       // empty
            "   \t ",                                                                 // empty
            " A fast brown fox leaps over a lazy dog.",                               // duplicate
        ];

        var result = _processor.Process(Fox.Source, raw, PromptTemplate.Default);

        Assert.Equal(new DropCounts(Empty: 3, Copies: 2, Duplicates: 2), result.Dropped);
        Assert.Equal(7, result.Dropped.Total);
        Assert.Equal(["A fast brown fox leaps over a lazy dog.", "a fast brown fox leaps over"],
            result.Candidates.Select(c => c.Text).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void CandidatesAreScoredAndSortedBestFirst()
    {
        string[] raw =
        [
            $" {Fox.Unrelated}\n",
            $" {Fox.Swapped}\n",
            $" {Fox.Paraphrase}\n",
            " The quick brown fox jumps over the lazy dog\n", // not a copy (no full stop), but no new word either
        ];

        var result = _processor.Process(Fox.Source, raw, PromptTemplate.Default);

        Assert.Equal(new DropCounts(0, 0, 0), result.Dropped);
        Assert.Equal(
            [Fox.Paraphrase, Fox.Unrelated, "The quick brown fox jumps over the lazy dog", Fox.Swapped],
            result.Candidates.Select(c => c.Text));
        var (paraphrase, unrelated, swapped) = (result.Candidates[0], result.Candidates[1], result.Candidates[3]);

        Assert.Equal(Fox.ParaphraseSimilarity, paraphrase.Similarity, Fox.Tolerance);
        Assert.Equal(6f / 11, paraphrase.Novelty, 1e-6f);
        Assert.Equal(paraphrase.Similarity, paraphrase.Score);

        Assert.Equal(Fox.UnrelatedSimilarity, unrelated.Similarity, Fox.Tolerance);
        Assert.Equal(1f, unrelated.Novelty);
        Assert.Equal(unrelated.Similarity, unrelated.Score);

        // The swap has the highest similarity of all, and no new word: it drops to the bottom.
        Assert.Equal(Fox.SwappedSimilarity, swapped.Similarity, Fox.Tolerance);
        Assert.True(swapped.Similarity > paraphrase.Similarity);
        Assert.Equal(0f, swapped.Novelty);
        Assert.Equal(swapped.Similarity - 1f, swapped.Score, 1e-6f);
        Assert.True(result.Candidates.Zip(result.Candidates.Skip(1)).All(p => p.First.Score >= p.Second.Score));
    }

    [Fact]
    public void CandidatesAreCutAtTheTemplatesOwnMarker()
    {
        var template = new PromptTemplate("### Input: {text}\n### Paraphrase:", "###");

        var result = _processor.Process(Fox.Source, [" A fast brown fox\nleaps over a lazy dog.\n### Input: x", "### Input: y"], template);

        Assert.Equal("A fast brown fox\nleaps over a lazy dog.", Assert.Single(result.Candidates).Text);
        Assert.Equal(new DropCounts(1, 0, 0), result.Dropped);
    }

    [Fact]
    public void WhenEverythingIsDroppedNothingIsScored()
    {
        var result = _processor.Process(Fox.Source, ["\n", Fox.Source, "   "], PromptTemplate.Default);

        Assert.Empty(result.Candidates);
        Assert.Equal(new DropCounts(2, 1, 0), result.Dropped);
        Assert.Empty(_processor.Process(Fox.Source, [], PromptTemplate.Default).Candidates);
    }
}
