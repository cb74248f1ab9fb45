using System.IO.Compression;
using System.Text;
using ParaphraseService.Training.Datasets;

namespace ParaphraseService.Training.Tests;

/// <summary>
/// Files written to disk byte for byte as other tools write them (pandas, Hugging Face datasets, Excel, gzip, Parquet),
/// read through <see cref="ParaphraseDatasetReader.Read(string, DatasetReadOptions?, CancellationToken)"/>: either the
/// pairs they hold, or an error that names the file and the problem.
/// </summary>
public sealed class ExportedFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("exported-datasets-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string Write(string name, string text) => Write(name, Encoding.UTF8.GetBytes(text));

    private static byte[] Gzip(string text)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal))
            gzip.Write(Encoding.UTF8.GetBytes(text));
        return buffer.ToArray();
    }

    private static DatasetException Fails(string path, DatasetReadOptions? options = null) =>
        Assert.Throws<DatasetException>(() => ParaphraseDatasetReader.Read(path, options));

    private static (string, string)[] Pairs(DatasetReadResult read) => [.. read.Pairs.Select(p => (p.Source, p.Target))];

    // Dataset.to_json: one object per line, every column (an int label, nested and null extras).
    private const string HuggingFaceJsonl =
        "{\"id\":1,\"sentence1\":\"The cat sat on the mat .\",\"sentence2\":\"On the mat sat the cat .\",\"label\":1,\"meta\":{\"split\":\"train\",\"tags\":[null]}}\n" +
        "{\"id\":2,\"sentence1\":\"Shares rose .\",\"sentence2\":\"Shares fell .\",\"label\":0,\"meta\":null}\n" +
        "{\"id\":3,\"sentence1\":\"He left early .\",\"sentence2\":\"He went home early .\",\"label\":1,\"meta\":null}\n";

    private const string PawsTsv = "id\tsentence1\tsentence2\tlabel\r\n1\tThe cat sat on the mat .\tOn the mat sat the cat .\t1\r\n" +
        "2\tShares rose .\tShares fell .\t0\r\n3\tHe left early .\tHe went home early .\t1\r\n";

    [Fact]
    public void GzipCompressedFilesAreReadAsTheirContentWithTheFormatOfTheNameBeforeGz()
    {
        // was "not a UTF-8 text file (line 1: byte 0x8B is not valid UTF-8)"
        (string, string)[] expected = [("The cat sat on the mat .", "On the mat sat the cat ."), ("He left early .", "He went home early .")];
        var jsonl = ParaphraseDatasetReader.Read(Write("train.jsonl.gz", Gzip(HuggingFaceJsonl)));
        Assert.Equal(DatasetFormat.Jsonl, jsonl.Format);
        Assert.Equal(expected, Pairs(jsonl));
        Assert.Equal(1, jsonl.NonParaphrasesSkipped);

        var paws = ParaphraseDatasetReader.Read(Write("dev.tsv.gz", Gzip(PawsTsv)));
        Assert.Equal(DatasetFormat.Paws, paws.Format);
        Assert.Equal(expected, Pairs(paws));

        // No extension under the .gz: the decompressed content tells the format.
        Assert.Equal(DatasetFormat.Jsonl, ParaphraseDatasetReader.Read(Write("upload.gz", Gzip(HuggingFaceJsonl))).Format);
        Assert.Equal(DatasetFormat.Jsonl, ParaphraseDatasetReader.FormatFromExtension("train.JSONL.GZ"));
    }

    [Fact]
    public void ATruncatedGzipFileIsRefusedNotReadAsAShorterDataset()
    {
        // GZipStream ends quietly where a cut file ends: the rows before the cut would have been trained on.
        var rows = string.Concat(Enumerable.Range(0, 2000).Select(i => $"{i}\tSentence number {i} is here .\tHere is sentence {i} .\t1\r\n"));
        var whole = Gzip("id\tsentence1\tsentence2\tlabel\r\n" + rows);
        foreach (var cut in new[] { whole.Length / 2, whole.Length - 8, whole.Length - 1 })
        {
            var error = Fails(Write("cut.tsv.gz", whole[..cut]), new DatasetReadOptions { Lenient = true });
            Assert.Contains("cut.tsv.gz: the gzip file is truncated or corrupt", error.Message);
        }
        Assert.Equal(2000, ParaphraseDatasetReader.Read(Write("whole.tsv.gz", whole)).Pairs.Count);
    }

    [Fact]
    public void AGzipFileThatDecompressesPastTheLimitIsRefused()
    {
        var path = Write("bomb.jsonl.gz", Gzip(string.Concat(Enumerable.Repeat("{\"source\":\"a b\",\"target\":\"c d\"}\n", 10_000))));
        var error = Fails(path, new DatasetReadOptions { MaxDecompressedBytes = 64 * 1024 });
        Assert.Contains("decompressed, the file is more than 65,536 bytes", error.Message);
    }

    [Theory]
    [InlineData("train.parquet", new byte[] { 0x50, 0x41, 0x52, 0x31, 0x15, 0x04, 0x15, 0x00, 0x50, 0x41, 0x52, 0x31 }, "a Parquet file")]
    [InlineData("pairs.xlsx", new byte[] { 0x50, 0x4B, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00 }, "a ZIP archive (an Excel .xlsx workbook is one)")]
    [InlineData("pairs.xls", new byte[] { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0x00 }, "an Excel .xls workbook")]
    [InlineData("dev.tsv.bz2", new byte[] { 0x42, 0x5A, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x01 }, "bzip2-compressed")]
    [InlineData("dev.tsv.xz", new byte[] { 0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 0x00, 0x04 }, "xz-compressed")]
    [InlineData("dev.tsv.zst", new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 0x04, 0x00 }, "Zstandard-compressed")]
    [InlineData("data-00000-of-00001.arrow", new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xF0, 0x00, 0x00, 0x00 }, "an Arrow stream")]
    public void BinaryFormatsAreRefusedByName(string name, byte[] bytes, string what)
    {
        // was "not a UTF-8 text file (line 1: byte 0x.. is not valid UTF-8); is it a binary file?"
        var error = Fails(Write(name, bytes));
        Assert.StartsWith($"{name}: {what}", error.Message, StringComparison.Ordinal);
        Assert.Contains("datasets are UTF-8 text", error.Message);
    }

    [Fact]
    public void ATarGzArchiveSuchAsPawssOwnDownloadIsRefusedByName()
    {
        // paws_wiki_labeled_final.tar.gz: a tar header (the member's name, then "ustar" at offset 257) inside gzip
        var header = new byte[512];
        Encoding.ASCII.GetBytes("final/dev.tsv").CopyTo(header, 0);
        Encoding.ASCII.GetBytes("ustar").CopyTo(header, 257);
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal))
            gzip.Write([.. header, .. Encoding.UTF8.GetBytes(PawsTsv), .. new byte[1024]]);
        var error = Fails(Write("paws_wiki_labeled_final.tar.gz", buffer.ToArray()));
        Assert.StartsWith("paws_wiki_labeled_final.tar.gz: a gzip-compressed tar archive", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TextThatStartsLikeAMagicNumberIsStillText()
    {
        var read = ParaphraseDatasetReader.Read(Write("pairs.csv", "PAR1,BZh9\nPK fine,ok then\n"), new DatasetReadOptions { SourceColumn = "PAR1", TargetColumn = "BZh9" });
        Assert.Equal([("PK fine", "ok then")], Pairs(read));
    }

    [Fact]
    public void PandasLabelsTrueFalseAndFloatsAreLabels()
    {
        // A bool column is written True/False; an int column with a missing value becomes float: 1.0, 0.0
        // (was "label 'True' is not 0 or 1"; with a label column, every "1.0" row was skipped as not a paraphrase).
        var booleans = ParaphraseDatasetReader.Read(Write("bool.csv", "sentence1,sentence2,label\nThe cat sat .,A cat sat .,True\nUp .,Down .,False\n"));
        Assert.Equal([("The cat sat .", "A cat sat .")], Pairs(booleans));
        Assert.Equal(1, booleans.NonParaphrasesSkipped);

        var floats = ParaphraseDatasetReader.Read(Write("float.csv", ",sentence1,sentence2,label\n0,The cat sat .,A cat sat .,1.0\n1,Up .,Down .,0.0\n"));
        Assert.Equal([("The cat sat .", "A cat sat .")], Pairs(floats));

        var quality = ParaphraseDatasetReader.Read(Write("mrpc.tsv", "Quality\t#1 String\t#2 String\n1.0\tHe left .\tHe went .\n0.0\tUp .\tDown .\n"),
            new DatasetReadOptions { SourceColumn = "#1 String", TargetColumn = "#2 String", LabelColumn = "Quality" });
        Assert.Equal([("He left .", "He went .")], Pairs(quality));
        Assert.Equal(1, quality.NonParaphrasesSkipped);
    }

    [Fact]
    public void PandasToCsvWithItsIndexColumnReadsTheNamedColumnsEvenWithoutAnExtension()
    {
        // df.to_csv(path): the index first, under an empty name; quoted fields with doubled quotes and a line break
        const string csv = ",sentence1,sentence2,label\n0,\"He said \"\"hi\"\" .\",\"He greeted us, saying \"\"hi\"\" .\",1\n" +
            "1,\"Line one\nline two .\",Two lines in one .,1\n";
        (string, string)[] expected = [("He said \"hi\" .", "He greeted us, saying \"hi\" ."), ("Line one\nline two .", "Two lines in one .")];
        Assert.Equal(expected, Pairs(ParaphraseDatasetReader.Read(Write("pairs.csv", csv))));
        // was "cannot tell the format ... its first line ',sentence1,sentence2,label' is neither ..."
        var noExtension = ParaphraseDatasetReader.Read(Write("upload", csv));
        Assert.Equal(DatasetFormat.Csv, noExtension.Format);
        Assert.Equal(expected, Pairs(noExtension));
    }

    [Fact]
    public void ATsvQuotedAsPandasWritesItIsRefusedWithTheOptionThatReadsIt()
    {
        // df.to_csv(path, sep="\t", index=False): a field holding a quote is quoted, its quotes doubled
        const string tsv = "sentence1\tsentence2\tlabel\n\"He said \"\"hi\"\" .\"\tHe greeted us .\t1\nPlain one .\tPlain two .\t1\n";
        var path = Write("pandas.tsv", tsv);
        // was read as the text "He said ""hi"" ." with its quotes, and trained on
        var error = Fails(path);
        Assert.Equal("line 2: 'sentence1' is in quotes with doubled quotes inside (\"He said \"\"hi\"\" .\"): " +
            "if the file quotes its fields as pandas and Python's csv write TSV, read it with TSV quoting (tsvQuoting, --tsv-quoting)", Assert.Single(error.Problems));
        Assert.Equal([("He said \"hi\" .", "He greeted us ."), ("Plain one .", "Plain two .")],
            Pairs(ParaphraseDatasetReader.Read(path, new DatasetReadOptions { TsvQuoting = true })));

        // A quoted line break splits the row when read without quoting: the column count problem says why.
        var split = Fails(Write("split.tsv", "sentence1\tsentence2\n\"Line one\nline two .\"\tTwo lines .\n"));
        Assert.EndsWith("a field opens with a quote mark: if the file quotes its fields as pandas and Python's csv write TSV, " +
            "read it with TSV quoting (tsvQuoting, --tsv-quoting)", split.Problems[0], StringComparison.Ordinal);

        // Quote marks that are text (MRPC, "Quoted" at the start) still read as text.
        Assert.Equal([("\"Quoted\" at the start .", "A \"quoted\" word .")],
            Pairs(ParaphraseDatasetReader.Read(Write("text.tsv", "source\ttarget\n\"Quoted\" at the start .\tA \"quoted\" word .\n"))));
    }

    [Fact]
    public void ASemicolonSeparatedCsvAsExcelWritesItIsNamed()
    {
        var error = Fails(Write("excel.csv", [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("sentence1;sentence2;label\r\nThe cat sat .;A cat sat .;1\r\n")]));
        Assert.Contains("header: its only column is 'sentence1;sentence2;label': are the columns separated by ';'? CSV separates them by ','", error.Message);
    }
}
