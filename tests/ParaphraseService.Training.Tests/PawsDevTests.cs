using ParaphraseService.Training.Datasets;

namespace ParaphraseService.Training.Tests;

/// <summary>
/// The real PAWS-Wiki dev split (shared/data/paws-wiki-final/dev.tsv, outside the repository: see <see cref="SharedData"/>):
/// 8,000 pairs, 3,539 labelled 1, CRLF line ends, pre-tokenised UTF-8 text.
/// </summary>
public sealed class PawsDevTests
{
    private static string DevTsv => SharedData.Get("paws-wiki-final", "dev.tsv");

    [Fact]
    public void TheFileIsWhatTheseTestsExpect()
    {
        // CRLF line ends: a reader that does not strip them sees every label as "1\r" or "0\r".
        var bytes = File.ReadAllBytes(DevTsv);
        Assert.StartsWith("id\tsentence1\tsentence2\tlabel\r\n", System.Text.Encoding.UTF8.GetString(bytes, 0, 40), StringComparison.Ordinal);
        Assert.Equal(8001, bytes.Count(b => b == (byte)'\n'));
        Assert.Equal(8001, bytes.Count(b => b == (byte)'\r'));
    }

    [Fact]
    public void ReadsTheLabelOnePairs()
    {
        var read = ParaphraseDatasetReader.Read(DevTsv);

        Assert.Equal(DatasetFormat.Paws, read.Format);
        Assert.Equal(8000, read.RowsRead);
        Assert.Equal(3539, read.ParaphraseRows);
        Assert.Equal(4461, read.NonParaphrasesSkipped);
        Assert.Equal(0, read.MalformedRowsSkipped);
        Assert.Empty(read.Problems);
        Assert.Equal(3539, read.Pairs.Count);
        Assert.DoesNotContain(read.Pairs, p => p.Source.Contains('\r', StringComparison.Ordinal) || p.Target.Contains('\r', StringComparison.Ordinal));
        // Line 492 (id 491): non-ASCII letters and PAWS's spaces before punctuation, as the file has them.
        Assert.Contains(new ParaphrasePair(
            "The Giuroc River is a tributary of the Măgheruş River in Romania .",
            "The River Giuroc is a tributary of the Măgheru River in Romania ."), read.Pairs);
        Assert.Contains(read.Pairs, p => p.Source.Contains("``", StringComparison.Ordinal) && p.Source.Contains("''", StringComparison.Ordinal));
        Assert.Contains(read.Pairs, p => p.Source.Contains(" -- ", StringComparison.Ordinal));
    }

    [Fact]
    public void BothDirectionsDoublesThePairs()
    {
        var read = ParaphraseDatasetReader.Read(DevTsv, new DatasetReadOptions { BothDirections = true });
        Assert.Equal(3539, read.ParaphraseRows);
        Assert.Equal(7078, read.Pairs.Count);
        Assert.Equal(new ParaphrasePair(read.Pairs[0].Target, read.Pairs[0].Source), read.Pairs[1]);
    }

    [Theory]
    [InlineData(false, 3539, 8, 5, 3526)]
    [InlineData(true, 7078, 16, 20, 7042)]
    public void PreparesWithoutSharingASentenceBetweenTrainAndEval(bool bothDirections, int pairs, int copies, int duplicates, int kept)
    {
        var read = ParaphraseDatasetReader.Read(DevTsv, new DatasetReadOptions { BothDirections = bothDirections });
        var prepared = DatasetPreparation.Prepare(read);
        var s = prepared.Summary;

        Assert.Equal(pairs, s.PairsRead);
        Assert.Equal((copies, duplicates, 0), (s.CopiesDropped, s.DuplicatesDropped, s.TooLongDropped));
        Assert.Equal(kept, s.TrainCount + s.EvalCount);
        Assert.InRange(s.EvalCount, kept / 10 - 6, kept / 10 + 6); // 10 %, give or take half a family of rewrites
        Assert.False(s.EvalSharesSentencesWithTrain);
        var trainSentences = prepared.Train.SelectMany(p => new[] { p.Source, p.Target }).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(prepared.Eval, p => trainSentences.Contains(p.Source) || trainSentences.Contains(p.Target));
    }
}
