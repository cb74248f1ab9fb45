using System.Text;
using ParaphraseService.Training.Datasets;
using static ParaphraseService.Training.Tests.TestData;

namespace ParaphraseService.Training.Tests;

public sealed class MalformedInputTests
{
    private static readonly DatasetReadOptions Lenient = new() { Lenient = true };

    [Fact]
    public void WrongColumnCountNamesTheLine()
    {
        var text = Paws("1\ta\tb\t1", "2\ta\tb", "3\ta\tb\t1\textra");
        var error = Fails(text, "dev.tsv");

        Assert.Equal(["line 3: expected 4 columns, found 3", "line 4: expected 4 columns, found 5"], error.Problems);
        Assert.Equal(2, error.ProblemCount);
        Assert.Equal("dev.tsv: 2 problems: line 3: expected 4 columns, found 3; line 4: expected 4 columns, found 5", error.Message);
    }

    [Fact]
    public void BadLabelNamesTheLineAndTheValue()
    {
        var error = Fails(Paws("1\ta\tb\t1", "2\tc\td\tx"), "dev.tsv");
        Assert.Equal("dev.tsv: line 3: label 'x' is not 0 or 1", error.Message);

        var json = Fails("{\"source\":\"a\",\"target\":\"b\",\"label\":2}\n", "x.jsonl");
        Assert.Equal("line 1: label '2' is not 0 or 1", Assert.Single(json.Problems));
    }

    [Fact]
    public void LongValuesAreCutShortInMessages()
    {
        var error = Fails(Paws("1\ta\tb\t" + new string('9', 5000)), "dev.tsv");
        Assert.True(error.Message.Length < 200, error.Message);
        Assert.Contains("...' is not 0 or 1", error.Message);
    }

    [Fact]
    public void MissingOrEmptyFieldsNameTheLineAndTheField()
    {
        var jsonl = "{\"source\":\"a\",\"target\":\"b\"}\n" +
                    "{\"source\":\"a\"}\n" +
                    "{\"target\":\"b\"}\n" +
                    "{\"source\":\"a\",\"target\":\"  \"}\n" +
                    "{\"source\":\"a\",\"target\":5}\n" +
                    "{\"source\":null,\"target\":\"b\"}\n";
        var error = Fails(jsonl, "x.jsonl");
        Assert.Equal(
            [
                "line 2: missing 'target'",
                "line 3: missing 'source'",
                "line 4: empty 'target'",
                "line 5: 'target' is a number, expected a string",
                "line 6: 'source' is null, expected a string",
            ],
            error.Problems);

        var csv = Fails("source,target\na,\n,b\n", "x.csv");
        Assert.Equal(["line 2: empty 'target'", "line 3: empty 'source'"], csv.Problems);
    }

    [Fact]
    public void InvalidJsonNamesTheLine()
    {
        var error = Fails("{\"source\":\"a\",\"target\":\"b\"}\n{\"source\": \"a\", target: \"b\"}\n[1, 2]\n\"text\"\n", "x.jsonl");
        Assert.Equal(3, error.ProblemCount);
        Assert.StartsWith("line 2: not valid JSON", error.Problems[0], StringComparison.Ordinal);
        Assert.Equal("line 3: expected a JSON object, found an array", error.Problems[1]);
        Assert.Equal("line 4: expected a JSON object, found a string", error.Problems[2]);
    }

    [Theory]
    [InlineData("source\ttarget\ra\tb\rc\td\r", "x.tsv")]
    [InlineData("source,target\ra,b\r", "x.csv")]
    [InlineData("{\"source\":\"a\",\"target\":\"b\"}\r{\"source\":\"c\",\"target\":\"d\"}\r", "x.jsonl")]
    public void CarriageReturnLineEndsAreNamedNotReadAsOneLine(string text, string name) =>
        // was "header only: no data rows" (TSV, CSV) or "not valid JSON" (JSONL)
        Assert.Contains("its lines end with a carriage return alone", Fails(text, name).Message);

    [Fact]
    public void ACarriageReturnThatJsonReadsAsWhitespaceIsFine() =>
        Assert.Equal(("a", "b"), Read("{\"source\":\"a\",\r\"target\":\"b\"}\r\n", "x.jsonl").Pairs.Select(p => (p.Source, p.Target)).Single());

    [Fact]
    public void ARepeatedKeyTakesItsLastValueAsPythonsJsonDoes()
    {
        // names match whatever their case ("Source"), so a case variant is a repeat too
        var read = Read("{\"source\":\"first\",\"target\":\"t\",\"Source\":\"last\"}\n{\"source\":\"a\",\"target\":\"x\",\"target\":\"b\"}\n", "x.jsonl");
        Assert.Equal([("last", "t"), ("a", "b")], read.Pairs.Select(p => (p.Source, p.Target)));
    }

    [Fact]
    public void AnEscapedLoneSurrogateIsAMalformedLineNotACrash()
    {
        // JSON parses "\ud800" (half of a surrogate pair), but no string can hold it: in a value, in a key, in the label.
        const string text = "{\"source\":\"a\",\"target\":\"b\"}\n{\"source\":\"\\ud800\",\"target\":\"b\"}\n"
            + "{\"\\udc00\":1,\"source\":\"a\",\"target\":\"b\"}\n{\"source\":\"c\",\"target\":\"d\",\"label\":\"\\ud800\"}\n";
        var error = Fails(text, "x.jsonl");
        Assert.Equal(3, error.ProblemCount);
        Assert.All(error.Problems, p => Assert.EndsWith("holds an unpaired UTF-16 surrogate escape (such as \\ud800), which is not text", p, StringComparison.Ordinal));
        Assert.Equal(["line 2", "line 3", "line 4"], error.Problems.Select(p => p[..p.IndexOf(':')]));
        var lenient = Read(text, "x.jsonl", Lenient);
        Assert.Equal(("a", "b"), (lenient.Pairs.Single().Source, lenient.Pairs.Single().Target));
    }

    [Theory]
    [InlineData("a\tb\n1\t2\n", "x.tsv", "header: no column named 'source' (or 'sentence1') (columns: a, b)")]
    [InlineData("source,b\n1,2\n", "x.csv", "header: no column named 'target' (or 'sentence2') (columns: source, b)")]
    public void HeaderWithoutTheColumnsListsTheColumnsFound(string text, string name, string expected) =>
        Assert.Contains(expected, Fails(text, name).Problems);

    [Fact]
    public void HeaderProblemsAreReportedTogether()
    {
        var error = Fails("a,b,a\n1,2,3\n", "x.csv", new DatasetReadOptions { SourceColumn = "in", TargetColumn = "out" });
        Assert.Equal(
            [
                "header: column 'a' appears 2 times",
                "header: no column named 'in' (columns: a, b, a)",
                "header: no column named 'out' (columns: a, b, a)",
            ],
            error.Problems);
    }

    [Fact]
    public void HeaderProblemsFailEvenWhenLenient() =>
        Assert.Throws<DatasetException>(() => Read("a,b\n1,2\n", "x.csv", Lenient));

    [Theory]
    [InlineData("x.tsv")]
    [InlineData("x.csv")]
    [InlineData("x.jsonl")]
    public void EmptyFile(string name)
    {
        Assert.Equal($"{name}: the file is empty", Fails("", name).Message);
        Assert.Equal($"{name}: the file is empty", Fails(Bytes("", bom: true), name).Message);
        Assert.Contains("only blank lines", Fails("\r\n  \n\n", name).Message);
    }

    [Theory]
    [InlineData("x.tsv", "id\tsentence1\tsentence2\tlabel\r\n")]
    [InlineData("x.csv", "source,target\n\n")]
    public void HeaderOnly(string name, string text) =>
        Assert.Equal($"{name}: header only: no data rows", Fails(text, name, Lenient).Message);

    [Fact]
    public void NoUsablePairs()
    {
        var error = Fails(Paws("1\ta\tb\t0", "2\tc\td\t0", "3\te\tf"), "dev.tsv", Lenient);
        Assert.Equal("dev.tsv: no paraphrase pairs: 3 rows read, 2 labelled 0 (not paraphrases), 1 malformed", error.Message);
    }

    [Fact]
    public void BinaryFileIsNotText()
    {
        // A PNG signature and the start of its header chunk: invalid UTF-8 at once.
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52];
        var error = Fails(png, "pairs.csv");
        Assert.Equal("pairs.csv: not a UTF-8 text file (line 1: byte 0x89 is not valid UTF-8); is it a binary file? Datasets must be UTF-8 text", error.Message);

        // Valid UTF-8 but NUL bytes (as in most binary formats, or a UTF-16 file without BOM).
        Assert.Contains("line 1: contains a NUL character", Fails(Encoding.Unicode.GetBytes("source,target\n"), "x.csv").Message);
        // A UTF-16 file with its BOM gets told what it is.
        Assert.Contains("UTF-16", Fails([0xFF, 0xFE, .. Encoding.Unicode.GetBytes("source,target\n")], "x.csv").Message);
    }

    [Fact]
    public void InvalidUtf8AfterTheFirstBlockNamesItsLineAndFailsEvenWhenLenient()
    {
        // Beyond the first 64 KiB sniffed up front: found line by line. Latin-1 'é' (0xE9) is not UTF-8.
        var good = string.Concat(Enumerable.Range(0, 3000).Select(i => $"source {i},target {i}\n"));
        byte[] bytes = [.. Bytes("source,target\n" + good), .. Encoding.Latin1.GetBytes("caf\u00e9,coffee\n")];
        Assert.True(bytes.Length > 64 * 1024);

        var error = Fails(bytes, "x.csv", Lenient);
        Assert.Equal("x.csv: not a UTF-8 text file (line 3002: byte 0xE9 at column 4 is not valid UTF-8); is it a binary file? Datasets must be UTF-8 text", error.Message);
    }

    [Fact]
    public void HugeLineIsAProblemOfItsLine()
    {
        var huge = new string('x', DatasetReadOptions.DefaultMaxLineBytes + 10);
        var text = "{\"source\":\"a\",\"target\":\"b\"}\n{\"source\":\"" + huge + "\",\"target\":\"b\"}\n{\"source\":\"c\",\"target\":\"d\"}\n";

        var error = Fails(text, "x.jsonl");
        Assert.Equal("x.jsonl: line 2: longer than 1,048,576 bytes", error.Message);

        var read = Read(text, "x.jsonl", Lenient);
        Assert.Equal([new("a", "b"), new("c", "d")], read.Pairs);
        Assert.Equal(1, read.MalformedRowsSkipped);
        Assert.Equal(3, read.RowsRead);
    }

    [Fact]
    public void HugeLineIsReadPastWithoutBeingHeld()
    {
        // 64 MiB of one line through a stream that makes its bytes on demand: the reader keeps at most the limit.
        var stream = new GeneratedStream("source\ttarget\n"u8.ToArray(), (byte)'y', 64L << 20, "\na\tb\n"u8.ToArray());
        var before = GC.GetAllocatedBytesForCurrentThread();
        var read = ParaphraseDatasetReader.Read(stream, "big.tsv", new DatasetReadOptions { Lenient = true, MaxLineBytes = 4096 });
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(new ParaphrasePair("a", "b"), Assert.Single(read.Pairs));
        Assert.Equal("line 2: longer than 4,096 bytes", Assert.Single(read.Problems));
        Assert.True(allocated < 8L << 20, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void HugeHeaderFails()
    {
        var error = Fails("source," + new string('x', 100) + "\na,b\n", "x.csv", new DatasetReadOptions { MaxLineBytes = 64 });
        Assert.Equal("x.csv: header: line 1 is longer than 64 bytes", error.Message);
    }

    [Fact]
    public void UnclosedQuoteNamesTheLineWhereTheRecordStarts()
    {
        var error = Fails("source,target\na,b\n\"c,d\ne,f\n", "x.csv");
        Assert.Equal("x.csv: line 3: quoted field (column 1) not closed before the end of the file", error.Message);

        var bounded = Fails("source,target\n\"open" + string.Concat(Enumerable.Repeat("\nmore text", 20)), "x.csv", new DatasetReadOptions { MaxLineBytes = 64 });
        // Reading resumes after the line that went over the limit; those lines are then rows of their own.
        Assert.StartsWith("line 2: record longer than 64 bytes (through line 8; a quote not closed?)", bounded.Problems[0], StringComparison.Ordinal);
        Assert.Equal("line 9: expected 2 columns, found 1", bounded.Problems[1]);
    }

    [Fact]
    public void TextAfterAClosingQuoteIsAProblem()
    {
        var error = Fails("source,target\n\"a\"b,c\n", "x.csv");
        Assert.Equal("x.csv: line 2: unexpected 'b' after the closing quote of column 1", error.Message);
    }

    [Fact]
    public void AtMostTwentyProblemsAreListedWithTheirCount()
    {
        var rows = Enumerable.Range(1, 30).Select(i => $"{i}\ta\tb");
        var error = Fails(Paws([.. rows]), "dev.tsv");

        Assert.Equal(30, error.ProblemCount);
        Assert.Equal(ParaphraseDatasetReader.MaxReportedProblems, error.Problems.Count);
        Assert.Equal("line 2: expected 4 columns, found 3", error.Problems[0]);
        Assert.Equal("line 21: expected 4 columns, found 3", error.Problems[^1]);
        Assert.StartsWith("dev.tsv: 30 problems: line 2: ", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("line 21: expected 4 columns, found 3; ... and 10 more", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LenientModeSkipsAndCountsBadRows()
    {
        var text = Paws(
            "1\ta\tb\t1",
            "2\tc\td",          // line 3: 3 columns
            "3\te\tf\tmaybe",   // line 4: bad label
            "4\tg\th\t0",       // not a paraphrase: skipped, not malformed
            "5\t \t \t1",       // line 6: both sides empty: one malformed row, two problems
            "6\ti\tj\t1");
        var read = Read(text, "dev.tsv", Lenient);

        Assert.Equal([new("a", "b"), new("i", "j")], read.Pairs);
        Assert.Equal(6, read.RowsRead);
        Assert.Equal(2, read.ParaphraseRows);
        Assert.Equal(1, read.NonParaphrasesSkipped);
        Assert.Equal(3, read.MalformedRowsSkipped);
        Assert.Equal(
            [
                "line 3: expected 4 columns, found 3",
                "line 4: label 'maybe' is not 0 or 1",
                "line 6: empty 'sentence1'",
                "line 6: empty 'sentence2'",
            ],
            read.Problems);
    }

    [Fact]
    public void LenientJsonlSkipsInvalidLines()
    {
        var read = Read("{\"source\":\"a\",\"target\":\"b\"}\nnot json\n{\"source\":\"c\"}\n{\"source\":\"e\",\"target\":\"f\"}\n", "x.jsonl", Lenient);
        Assert.Equal([new("a", "b"), new("e", "f")], read.Pairs);
        Assert.Equal(2, read.MalformedRowsSkipped);
        Assert.Equal(4, read.RowsRead);
    }

    [Fact]
    public void ReadingStopsWhenCancelled()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        using var stream = new MemoryStream(Bytes("source,target\na,b\n"));
        Assert.Throws<OperationCanceledException>(() => ParaphraseDatasetReader.Read(stream, "x.csv", cancellationToken: cancelled.Token));
    }

    /// <summary>A read-only stream of a head, then <c>count</c> copies of one byte, then a tail, made as it is read.</summary>
    private sealed class GeneratedStream(byte[] head, byte fill, long count, byte[] tail) : Stream
    {
        private long _position;
        private readonly long _length = head.Length + count + tail.Length;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int size)
        {
            var n = (int)Math.Min(size, _length - _position);
            for (var i = 0; i < n; i++, _position++)
            {
                buffer[offset + i] = _position < head.Length ? head[_position]
                    : _position < head.Length + count ? fill
                    : tail[_position - head.Length - count];
            }
            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
