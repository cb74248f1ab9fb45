using ParaphraseService.Training.Datasets;
using static ParaphraseService.Training.Tests.TestData;

namespace ParaphraseService.Training.Tests;

public sealed class ReaderFormatTests
{
    [Theory]
    [InlineData("a.tsv", DatasetFormat.Tsv)]
    [InlineData("a.TAB", DatasetFormat.Tsv)]
    [InlineData("dir/a.CSV", DatasetFormat.Csv)]
    [InlineData("a.jsonl", DatasetFormat.Jsonl)]
    [InlineData("a.ndjson", DatasetFormat.Jsonl)]
    [InlineData("a.json", null)]
    [InlineData("a.txt", null)]
    [InlineData("a", null)]
    public void FormatComesFromTheExtension(string name, DatasetFormat? expected) =>
        Assert.Equal(expected, ParaphraseDatasetReader.FormatFromExtension(name));

    [Fact]
    public void UnknownExtensionAsksForTheFormat()
    {
        var error = Fails("source,target\na,b\n", "pairs.txt");
        Assert.Contains("pairs.txt", error.Message);
        Assert.Contains("'.txt'", error.Message);
        Assert.Contains("give the format", error.Message);
        // Given explicitly, the same bytes read.
        Assert.Single(Read("source,target\na,b\n", "pairs.txt", new DatasetReadOptions { Format = DatasetFormat.Csv }).Pairs);
    }

    [Fact]
    public void PawsFixtureReadsLabelOneRowsAndCountsTheRest()
    {
        var read = ParaphraseDatasetReader.Read(Fixtures.Get("datasets", "paws-sample.tsv"));

        Assert.Equal(DatasetFormat.Paws, read.Format);
        Assert.Equal(5, read.RowsRead);
        Assert.Equal(3, read.ParaphraseRows);
        Assert.Equal(2, read.NonParaphrasesSkipped);
        Assert.Equal(0, read.MalformedRowsSkipped);
        Assert.Equal(3, read.Pairs.Count);
        // CRLF: no '\r' left on the last column's neighbours or anywhere else; pre-tokenised text kept as it is.
        Assert.DoesNotContain(read.Pairs, p => p.Source.Contains('\r', StringComparison.Ordinal) || p.Target.Contains('\r', StringComparison.Ordinal));
        Assert.Equal("The NBA season of 1975 -- 76 was the 30th season of the National Basketball Association .", read.Pairs[1].Source);
        Assert.Equal("He described it as `` the year 's best film '' .", read.Pairs[2].Target);
    }

    [Fact]
    public void PawsBothDirectionsDoublesThePairs()
    {
        var read = ParaphraseDatasetReader.Read(Fixtures.Get("datasets", "paws-sample.tsv"), new DatasetReadOptions { BothDirections = true });

        Assert.Equal(3, read.ParaphraseRows);
        Assert.Equal(6, read.Pairs.Count);
        Assert.True(read.BothDirections);
        Assert.Equal(read.Pairs[0].Source, read.Pairs[1].Target);
        Assert.Equal(read.Pairs[0].Target, read.Pairs[1].Source);
    }

    [Fact]
    public void PawsReadsNonAsciiText()
    {
        var read = Read(Paws("1\tKöroğlu is in Gölbaşı .\tGölbaşı has Köroğlu in it .\t1"), "x.tsv");
        Assert.Equal(new ParaphrasePair("Köroğlu is in Gölbaşı .", "Gölbaşı has Köroğlu in it ."), Assert.Single(read.Pairs));
    }

    [Fact]
    public void PawsGivenExplicitlyNeedsThePawsHeader()
    {
        var options = new DatasetReadOptions { Format = DatasetFormat.Paws };
        Assert.Single(Read(Paws("1\ta\tb\t1"), "upload.bin", options).Pairs);

        var error = Fails("source\ttarget\na\tb\n", "x.tsv", options);
        Assert.Contains("header: expected PAWS's", error.Message);
        Assert.Contains("source, target", error.Message);
    }

    [Fact]
    public void PawsQuoteMarksAreText()
    {
        // PAWS has no quoting: a field starting with a quote mark is text, tabs are the only separators.
        var read = Read(Paws("1\t\"Quoted\" at the start .\tA \"quoted\" word .\t1"), "x.tsv", new DatasetReadOptions { TsvQuoting = true });
        Assert.Equal(new ParaphrasePair("\"Quoted\" at the start .", "A \"quoted\" word ."), Assert.Single(read.Pairs));
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void TsvWithNamedColumnsInAnyOrder(string newline)
    {
        var text = string.Join(newline, "id\ttarget\tsource", "1\tt one\ts one", "2\tt two\ts two") + newline;
        var read = Read(text, "x.tsv");

        Assert.Equal(DatasetFormat.Tsv, read.Format);
        Assert.Equal([new("s one", "t one"), new("s two", "t two")], read.Pairs);
        Assert.Equal(2, read.RowsRead);
        Assert.Equal(0, read.NonParaphrasesSkipped);
    }

    [Fact]
    public void TsvWithoutATrailingNewlineAndWithBlankLines()
    {
        var read = Read("source\ttarget\n\na\tb\n   \nc\td", "x.tsv");
        Assert.Equal([new("a", "b"), new("c", "d")], read.Pairs);
        Assert.Equal(2, read.RowsRead);
    }

    [Fact]
    public void Sentence1AndSentence2AreAcceptedWhenSourceAndTargetAreAbsent()
    {
        var read = Read("sentence1\tsentence2\na\tb\n", "x.tsv");
        Assert.Equal(new ParaphrasePair("a", "b"), Assert.Single(read.Pairs));
    }

    [Fact]
    public void ColumnNamesAreConfigurableAndMatchedIgnoringCase()
    {
        var options = new DatasetReadOptions { SourceColumn = "question", TargetColumn = "rewrite" };
        var read = Read("Rewrite,Question\nr1,q1\n", "x.csv", options);
        Assert.Equal(new ParaphrasePair("q1", "r1"), Assert.Single(read.Pairs));
    }

    [Fact]
    public void ALabelColumnFiltersNamedColumnFilesToo()
    {
        var read = Read("source,target,label\na,b,1\nc,d,0\ne,f, 1 \n", "x.csv");
        Assert.Equal([new("a", "b"), new("e", "f")], read.Pairs);
        Assert.Equal(1, read.NonParaphrasesSkipped);
        Assert.Equal(3, read.RowsRead);
    }

    [Fact]
    public void CsvFixtureWithRfc4180Quoting()
    {
        var read = ParaphraseDatasetReader.Read(Fixtures.Get("datasets", "pairs.csv"));

        Assert.Equal(DatasetFormat.Csv, read.Format);
        Assert.Equal(
            [
                new("Hello, world.", "Hi, everyone."),
                new("She said \"no\" twice.", "She refused, saying \"no\" two times."),
                new("First line\nsecond line", "Line one, then line two"),
                new("plain text", "another plain text"),
            ],
            read.Pairs);
        Assert.Equal(4, read.RowsRead);
    }

    [Fact]
    public void CsvQuotedFieldsMayBeEmptyOrHoldOnlyQuotes()
    {
        var read = Read("source,target,extra\r\n\"\"\"x\"\"\",\"y\",\"\"\r\n", "x.csv");
        Assert.Equal(new ParaphrasePair("\"x\"", "y"), Assert.Single(read.Pairs));
    }

    [Fact]
    public void CsvHeaderMayBeQuoted()
    {
        var read = Read("\"source\",\"target\"\na,b\n", "x.csv", bom: true);
        Assert.Equal(new ParaphrasePair("a", "b"), Assert.Single(read.Pairs));
    }

    [Fact]
    public void CsvQuoteInsideAnUnquotedFieldIsText()
    {
        var read = Read("source,target\nA 5\" screen,A five-inch screen\n", "x.csv");
        Assert.Equal(new ParaphrasePair("A 5\" screen", "A five-inch screen"), Assert.Single(read.Pairs));
    }

    [Fact]
    public void TsvQuotingIsOptional()
    {
        // Off (default): quote marks are text.
        var plain = Read("source\ttarget\n\"Hi\" she said\tShe said \"hi\"\n", "x.tsv");
        Assert.Equal(new ParaphrasePair("\"Hi\" she said", "She said \"hi\""), Assert.Single(plain.Pairs));

        // On: pandas-style quoted fields, with doubled quotes and a tab inside quotes.
        var quoted = "source\ttarget\n\"She said \"\"hi\"\"\"\t\"Line\tone\"\n";
        var read = Read(quoted, "x.tsv", new DatasetReadOptions { TsvQuoting = true });
        Assert.Equal(new ParaphrasePair("She said \"hi\"", "Line\tone"), Assert.Single(read.Pairs));
        Assert.Contains("line 2: expected 2 columns, found 3", Fails(quoted, "x.tsv").Message);
    }

    [Fact]
    public void JsonlFixtureWithBomAndBlankLines()
    {
        var read = ParaphraseDatasetReader.Read(Fixtures.Get("datasets", "pairs.jsonl"));

        Assert.Equal(DatasetFormat.Jsonl, read.Format);
        Assert.Equal(
            [
                new("The cat sat on the mat.", "A cat was sitting on the mat."),
                new("Müller sagte, das sei gut.", "Das ist gut, sagte Müller."),
                new("It is raining.", "Rain is falling."),
            ],
            read.Pairs);
        Assert.Equal(3, read.RowsRead);
    }

    [Fact]
    public void JsonlWithCrlfEscapesAndLabels()
    {
        var text = "{\"source\": \"a\\u00e9\\n\", \"target\": \"b\"}\r\n" +
                   "{\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": 0}\r\n" +
                   "{\"SOURCE\": \"e\", \"Target\": \"f\", \"label\": true}\r\n" +
                   "{\"source\": \"g\", \"target\": \"h\", \"label\": \"1\"}\r\n";
        var read = Read(text, "x.jsonl");
        Assert.Equal([new("aé\n", "b"), new("e", "f"), new("g", "h")], read.Pairs);
        Assert.Equal(1, read.NonParaphrasesSkipped);
        Assert.Equal(4, read.RowsRead);
    }

    [Fact]
    public void JsonlPropertyNamesAreConfigurable()
    {
        var read = Read("{\"in\": \"a\", \"out\": \"b\"}\n", "x.jsonl", new DatasetReadOptions { SourceColumn = "in", TargetColumn = "out" });
        Assert.Equal(new ParaphrasePair("a", "b"), Assert.Single(read.Pairs));
    }

    [Theory]
    [InlineData("x.tsv", "source\ttarget\r\na\tb\r\n")]
    [InlineData("x.csv", "source,target\r\na,b\r\n")]
    [InlineData("x.jsonl", "{\"source\":\"a\",\"target\":\"b\"}\r\n")]
    public void EveryFormatReadsWithOrWithoutBomAndWithCrlfOrLf(string name, string crlf)
    {
        var lf = crlf.Replace("\r\n", "\n", StringComparison.Ordinal);
        foreach (var text in new[] { crlf, lf })
        {
            foreach (var bom in new[] { false, true })
                Assert.Equal(new ParaphrasePair("a", "b"), Assert.Single(Read(text, name, bom: bom).Pairs));
        }
    }

    [Fact]
    public void BothDirectionsWorksForEveryFormat()
    {
        var options = new DatasetReadOptions { BothDirections = true };
        Assert.Equal([new("a", "b"), new("b", "a")], Read("{\"source\":\"a\",\"target\":\"b\"}\n", "x.jsonl", options).Pairs);
        Assert.Equal([new("a", "b"), new("b", "a")], Read("source,target\na,b\n", "x.csv", options).Pairs);
    }

    [Fact]
    public void ReadingFromAPathNamesTheFileNotItsFolder()
    {
        var folder = Directory.CreateTempSubdirectory("datasets-").FullName;
        try
        {
            var path = Path.Combine(folder, "mine.csv");
            File.WriteAllText(path, "a,b\n1,2\n");
            var error = Assert.Throws<DatasetException>(() => ParaphraseDatasetReader.Read(path));
            Assert.StartsWith("mine.csv: ", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(folder, error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
