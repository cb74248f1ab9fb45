using ParaphraseService.Training.Evaluation;

namespace ParaphraseService.Training.Tests.Evaluation;

/// <summary>Self-BLEU and iBLEU against sacreBLEU-derived values (see SacreBleuExpectations.cs) and their definitions.</summary>
public class ParaphraseMetricsTests
{
    private const double Tolerance = 1e-9;

    public static TheoryData<string> Cases => new(SacreBleuExpectations.Paraphrases.Select(c => c.Name));

    [Theory, MemberData(nameof(Cases))]
    public void CorpusScoresMatchSacreBleu(string name)
    {
        var c = SacreBleuExpectations.Paraphrases.Single(x => x.Name == name);
        var examples = c.Sources.Select((s, i) => new ParaphraseExample(s, c.References[i], c.Candidates[i])).ToArray();

        var scores = ParaphraseMetrics.Score(examples, c.Alpha);

        Assert.Equal(c.Bleu, scores.Bleu, Tolerance);
        Assert.Equal(c.SelfBleu, scores.SelfBleu, Tolerance);
        Assert.Equal(c.IBleu, scores.IBleu, Tolerance);
        Assert.Equal(c.Sources.Length, scores.Count);
        Assert.Equal(scores, ParaphraseMetrics.Score(c.Sources, c.References, c.Candidates, c.Alpha));
    }

    [Theory, MemberData(nameof(Cases))]
    public void SentenceScoresMatchSacreBleu(string name)
    {
        var c = SacreBleuExpectations.Paraphrases.Single(x => x.Name == name);
        for (var i = 0; i < c.Sources.Length; i++)
        {
            Assert.Equal(c.SentenceBleu[i], ParaphraseMetrics.SentenceBleu(c.References[i], c.Candidates[i]), Tolerance);
            Assert.Equal(c.SentenceSelfBleu[i], ParaphraseMetrics.SentenceSelfBleu(c.Sources[i], c.Candidates[i]), Tolerance);
            Assert.Equal(c.SentenceIBleu[i], ParaphraseMetrics.SentenceIBleu(c.Sources[i], c.References[i], c.Candidates[i], c.Alpha), Tolerance);
        }
    }

    [Fact]
    public void CopyingTheSourceHasSelfBleu100AndIsPenalisedByIBleu()
    {
        const string source = "The meeting was postponed because of the storm.";
        const string reference = "Because of the storm, the meeting was delayed.";
        Assert.Equal(100, ParaphraseMetrics.SentenceSelfBleu(source, source), Tolerance);
        Assert.True(
            ParaphraseMetrics.SentenceIBleu(source, reference, source)
            < ParaphraseMetrics.SentenceIBleu(source, reference, reference));
    }

    [Fact]
    public void AlphaOneIsBleuAndAlphaZeroIsMinusSelfBleu()
    {
        ParaphraseExample[] examples =
        [
            new("How do I learn to cook quickly?", "What is the fastest way to learn cooking?", "What's the quickest way to learn to cook?"),
            new("The meeting was postponed.", "The meeting was delayed.", "The meeting got postponed."),
        ];
        var atOne = ParaphraseMetrics.Score(examples, alpha: 1);
        var atZero = ParaphraseMetrics.Score(examples, alpha: 0);
        Assert.Equal(atOne.Bleu, atOne.IBleu, Tolerance);
        Assert.Equal(-atZero.SelfBleu, atZero.IBleu, Tolerance);
        Assert.Equal(0.9 * atOne.Bleu - 0.1 * atOne.SelfBleu, ParaphraseMetrics.Score(examples).IBleu, Tolerance);
        Assert.Equal(0.9, ParaphraseMetrics.DefaultAlpha);
    }

    [Fact]
    public void NoExamplesScoreZero() =>
        Assert.Equal(new ParaphraseScores(0, 0, 0, 0), ParaphraseMetrics.Score([]));

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.1)]
    [InlineData(double.NaN)]
    public void AlphaOutsideZeroToOneIsRejected(double alpha)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ParaphraseMetrics.IBleu(10, 20, alpha));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParaphraseMetrics.SentenceIBleu("a", "b", "c", alpha));
        Assert.Throws<ArgumentOutOfRangeException>(() => ParaphraseMetrics.Score([new ParaphraseExample("a", "b", "c")], alpha));
    }

    [Fact]
    public void ListsThatAreNotParallelAreRejected() =>
        Assert.Throws<ArgumentException>(() => ParaphraseMetrics.Score(["a", "b"], ["a"], ["a", "b"]));
}
