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

    public static TheoryData<string, string, DatasetFormat> ContentOnly => new()
    {
        { "data", "{\"source\": \"a b\", \"target\": \"b a\"}\n", DatasetFormat.Jsonl },
        { "upload.bin", "\n  {\"source\": \"a b\", \"target\": \"b a\"}\r\n", DatasetFormat.Jsonl },
        { "upload.bin", "source\ttarget\na, b\tb, a\n", DatasetFormat.Tsv },
        { "pairs.txt", "source,target\na,b\n", DatasetFormat.Csv },
        { "data", "\"source\",\"target\"\r\n\"a, b\",\"b, a\"\r\n", DatasetFormat.Csv },
        { "data", "id\tsentence1\tsentence2\tlabel\n1\tA cat sat.\tThe cat sat.\t1\n", DatasetFormat.Paws },
        { "data", "source,target\na\tb,c\n", DatasetFormat.Csv },
    };

    [Theory]
    [MemberData(nameof(ContentOnly))]
    public void AutoTellsTheFormatFromTheContentWhenTheExtensionSaysNothing(string name, string content, DatasetFormat expected)
    {
        var read = Read(content, name, bom: name == "upload.bin");
        Assert.Equal(expected, read.Format);
        Assert.Single(read.Pairs);
        // The same from a stream that cannot seek: the bytes looked at are read again.
        using var stream = new OneWay(Bytes(content));
        Assert.Equal(read.Pairs, ParaphraseDatasetReader.Read(stream, name).Pairs);
    }

    [Fact]
    public void AutoReadsAJsonLinesFileWhoseFirstLineIsLongerThanTheLookAhead()
    {
        var line = "{\"source\": \"" + string.Join(' ', Enumerable.Repeat("word", 40_000)) + "\", \"target\": \"b\"}\n";
        var read = Read(line + "{\"source\": \"c d\", \"target\": \"d c\"}\n", "upload");
        Assert.Equal(DatasetFormat.Jsonl, read.Format);
        Assert.Equal(2, read.Pairs.Count);
    }

    [Theory]
    [InlineData("notes.txt", "hello world\nsecond line\n", "'hello world' is neither a JSON object nor a header")]
    [InlineData("data.json", "[{\"source\": \"a\", \"target\": \"b\"}]\n", "starts with '['")]
    [InlineData("data", "", "empty")]
    [InlineData("data", "\n \n", "empty or blank")]
    [InlineData("data", "single\n", "neither a JSON object nor a header")]
    public void AutoAsksForTheFormatWhenTheContentDoesNotShowIt(string name, string content, string why)
    {
        var error = Fails(content, name);
        Assert.Contains(name, error.Message);
        Assert.Contains("cannot tell the format", error.Message);
        Assert.Contains(why, error.Message);
        Assert.Contains("give the format", error.Message);
    }

    [Fact]
    public void AutoCallsABinaryFileBinary()
    {
        var error = Fails(new byte[] { 0x13, 0x37, 0xFF, 0x00, 0x10 }, "upload.bin");
        Assert.Contains("not a UTF-8 text file", error.Message);
        // a format known by its magic number is named (a ZIP archive's "PK\x03\x04")
        Assert.Contains("upload.bin: a ZIP archive", Fails(new byte[] { 0x50, 0x4B, 0x03, 0x04, 0xFF, 0x00, 0x10 }, "upload.bin").Message);
    }

    [Fact]
    public void TheFormatGivenOverridesTheExtensionAndTheContent()
    {
        var read = Read("source,target\na,b\n", "pairs.txt", new DatasetReadOptions { Format = DatasetFormat.Csv });
        Assert.Equal(DatasetFormat.Csv, read.Format);
        Assert.Throws<DatasetException>(() => Read("{\"source\": \"a\", \"target\": \"b\"}\n", "data", new DatasetReadOptions { Format = DatasetFormat.Csv }));
    }

    /// <summary>MRPC as Microsoft distributes it: a BOM, tabs, a Quality label, quotes that are text; .txt says nothing.</summary>
    private const string Mrpc =
        "\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n" +
        "1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" , of deliberately distorting his evidence .\tReferring to him as only \" the witness \" , Amrozi accused his brother of deliberately distorting his evidence .\r\n" +
        "0\t2108705\t2108831\tYucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .\tYucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion in 1998 .\r\n" +
        "1\t1330381\t1330521\tThey had published an advertisement on the Internet on June 10 , offering the cargo for sale , he added .\tOn June 10 , the ship 's owners had published an advertisement on the Internet , offering the explosives for sale .\r\n";

    private static readonly DatasetReadOptions MrpcColumns = new() { SourceColumn = "#1 String", TargetColumn = "#2 String", LabelColumn = "Quality" };

    [Fact]
    public void AnMrpcFileTrainsOnItsParaphrasePairsOnly()
    {
        var read = Read(Mrpc, "msr_paraphrase_train.txt", MrpcColumns);
        Assert.Equal(DatasetFormat.Tsv, read.Format);
        Assert.Equal((3, 2, 1), (read.RowsRead, read.ParaphraseRows, read.NonParaphrasesSkipped));
        Assert.StartsWith("Amrozi accused", read.Pairs[0].Source);
        Assert.StartsWith("On June 10", read.Pairs[1].Target);
        Assert.Equal("Quality", read.LabelColumn);
        Assert.Equal(["1"], read.LabelValues!);
        var summary = DatasetPreparation.Prepare(read, new DatasetPreparationOptions { EvalFraction = 0 }).Summary;
        Assert.Equal((1, "Quality"), (summary.NonParaphrasesSkipped, summary.LabelColumn));
    }

    [Fact]
    public void LabelValuesAreComparedTrimmedAndIgnoringCaseAndOtherValuesAreSkippedAndCounted()
    {
        var options = new DatasetReadOptions { LabelColumn = "verdict", LabelValues = ["yes", "Paraphrase"] };
        var read = Read("source,target,verdict\na,b,YES\nc,d,no\ne,f, paraphrase \ng,h,maybe\n", "x.csv", options);
        Assert.Equal([new("a", "b"), new("e", "f")], read.Pairs);
        Assert.Equal(2, read.NonParaphrasesSkipped);
    }

    [Fact]
    public void AnUnknownLabelColumnIsRefusedNamingTheColumnsThereAre()
    {
        var error = Fails(Mrpc, "msr_paraphrase_train.txt", MrpcColumns with { LabelColumn = "quality_score" });
        Assert.Contains("no label column named 'quality_score'", error.Message);
        Assert.Contains("#1 String", error.Message);
        Assert.Contains("Quality", error.Message);
        var same = Fails("source,target\na,b\n", "x.csv", new DatasetReadOptions { LabelColumn = "target" });
        Assert.Contains("also the target column", same.Message);
    }

    [Fact]
    public void AnEmptyLabelIsAProblemOfItsLine()
    {
        var error = Fails("source,target,q\na,b,1\nc,d,\n", "x.csv", new DatasetReadOptions { LabelColumn = "q" });
        Assert.Contains("line 3: empty label 'q'", error.Message);
        var lenient = Read("source,target,q\na,b,1\nc,d,\n", "x.csv", new DatasetReadOptions { LabelColumn = "q", Lenient = true });
        Assert.Equal((1, 1), (lenient.Pairs.Count, lenient.MalformedRowsSkipped));
    }

    [Fact]
    public void JsonLinesLabelsMayBeStringsNumbersOrBooleans()
    {
        var lines = "{\"s\": \"a\", \"t\": \"b\", \"ok\": 1}\n{\"s\": \"c\", \"t\": \"d\", \"ok\": \"1\"}\n" +
            "{\"s\": \"e\", \"t\": \"f\", \"ok\": 1.0}\n{\"s\": \"g\", \"t\": \"h\", \"ok\": 0}\n{\"s\": \"i\", \"t\": \"j\", \"ok\": true}\n";
        var options = new DatasetReadOptions { SourceColumn = "s", TargetColumn = "t", LabelColumn = "ok" };
        var read = Read(lines, "x.jsonl", options);
        Assert.Equal(["a", "c", "e"], read.Pairs.Select(p => p.Source));
        Assert.Equal(2, read.NonParaphrasesSkipped);
        Assert.Equal(["a", "c", "e", "i"], Read(lines, "x.jsonl", options with { LabelValues = ["1", "true"] }).Pairs.Select(p => p.Source));
        var missing = Fails("{\"s\": \"a\", \"t\": \"b\"}\n", "x.jsonl", options);
        Assert.Contains("line 1: missing the label 'ok'", missing.Message);
    }

    [Fact]
    public void LabelValuesNeedALabelColumn()
    {
        Assert.Throws<ArgumentException>(() => Read("source,target\na,b\n", "x.csv", new DatasetReadOptions { LabelValues = ["1"] }));
        Assert.Throws<ArgumentException>(() => Read("source,target,q\na,b,1\n", "x.csv", new DatasetReadOptions { LabelColumn = "q", LabelValues = [] }));
    }

    /// <summary>A stream that can only be read forwards, as a network upload is.</summary>
    private sealed class OneWay(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
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
