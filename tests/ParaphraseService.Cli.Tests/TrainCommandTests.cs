using System.Text.Json;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public sealed class TrainCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("train-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task TrainWritesAPeftAdapterThatGenerateCanUse()
    {
        var output = Path.Combine(_temp, "adapter");
        var train = await CliRunner.RunAsync("train", "--model", "demo", "--data", Fixtures.Get("datasets", "pairs.jsonl"), "--out", output,
            "--max-steps", "2", "--epochs", "3", "--batch-size", "2", "--rank", "4", "--eval-fraction", "0.34", "--bleu-samples", "2", "--checkpoint-every", "1");
        Assert.True(train.ExitCode == 0, train.StandardError);
        Assert.Contains("train: 2/2 steps (100%)", train.StandardError);
        foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors", "paraphrase_adapter.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        var metadata = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "paraphrase_adapter.json"))).RootElement;
        Assert.Equal("fine-tune", metadata.GetProperty("origin").GetString());
        Assert.Equal("Original: {text}\nParaphrase:", metadata.GetProperty("prompt_template").GetString());
        Assert.True(metadata.GetProperty("metrics").TryGetProperty("eval_loss", out _));
        Assert.True(metadata.GetProperty("metrics").TryGetProperty("ibleu", out _)); // generated paraphrases were scored
        Assert.Contains("step 1: checkpoint saved", train.StandardError);
        Assert.False(Directory.Exists(output + ".checkpoints")); // deleted once the adapter is written
        Assert.Equal(4, metadata.GetProperty("training").GetProperty("hyperparameters").GetProperty("rank").GetInt32());

        var generate = await CliRunner.RunAsync("generate", "--model", "demo", "--adapter", output, "--prompt", "Hello", "--greedy", "--max-new-tokens", "3", "--json");
        Assert.True(generate.ExitCode == 0, generate.StandardError);
        Assert.Equal("adapter", JsonDocument.Parse(generate.StandardOutput).RootElement.GetProperty("adapter").GetString());
    }

    [Fact]
    public async Task AMalformedDatasetIsOneErrorLineWithItsLineNumber()
    {
        var data = Path.Combine(_temp, "bad.jsonl");
        File.WriteAllText(data, "{\"source\": \"a\", \"target\": \"b\"}\nnot json\n");
        var run = await CliRunner.RunAsync("train", "--data", data, "--out", Path.Combine(_temp, "out"));
        Assert.NotEqual(0, run.ExitCode);
        var line = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains("line 2", line);
        Assert.False(Directory.Exists(Path.Combine(_temp, "out")));
    }

    [Fact]
    public async Task AnMrpcFileTrainsOnItsParaphrasesThroughTheLabelColumnAndTheContentTellsItsFormat()
    {
        var data = Path.Combine(_temp, "msr_paraphrase_train.txt");
        File.WriteAllText(data, "\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n" +
            "1\t1\t2\tThe cat sat on the mat .\tOn the mat sat the cat .\r\n" +
            "0\t3\t4\tShares rose on Monday .\tShares fell on Tuesday .\r\n" +
            "1\t5\t6\tHe left early .\tHe went home early .\r\n" +
            "1\t7\t8\tThe rain stopped at noon .\tAt noon the rain ended .\r\n");
        var output = Path.Combine(_temp, "mrpc");
        var train = await CliRunner.RunAsync("train", "--model", "demo", "--data", data, "--out", output, "--source-column", "#1 String",
            "--target-column", "#2 String", "--label-column", "Quality", "--max-steps", "1", "--batch-size", "2", "--rank", "2", "--bleu-samples", "0");
        Assert.True(train.ExitCode == 0, train.StandardError);
        Assert.Contains("1 rows not paraphrases skipped", train.StandardError);
        var dataset = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "paraphrase_adapter.json"))).RootElement.GetProperty("training").GetProperty("dataset");
        Assert.Equal("Quality", dataset.GetProperty("label_column").GetString());
        Assert.Equal(3, dataset.GetProperty("paraphrase_rows").GetInt32());
    }

    [Theory]
    [InlineData("--targets", "query", "'query' matches no module of the gptj base; valid names: k_proj")]
    [InlineData("--max-length", "9999", "max sequence length must be 8-2048 (got 9999)")]
    [InlineData("--template", "Rewrite the following sentence in other words, keeping its meaning exactly: {text}\nRewritten:", "raise --max-length")]
    [InlineData("--label-values", "1", "--label-values needs --label-column")]
    [InlineData("--rank", "0", "rank must be 1-256 (got 0)")]
    public async Task OptionsThatCannotWorkAreRefusedBeforeTrainingWithExitCode2(string option, string value, string message)
    {
        var output = Path.Combine(_temp, "refused");
        string[] args = ["train", "--model", "demo", "--data", Fixtures.Get("datasets", "pairs.jsonl"), "--out", output, option, value];
        if (option == "--template") args = [.. args, "--max-length", "16"];
        var run = await CliRunner.RunAsync(args);
        Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}: {run.StandardError}");
        Assert.Contains(message, run.StandardError);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task AGzipCompressedTsvQuotedAsPandasWritesItTrainsWithTsvQuoting()
    {
        // pandas' to_csv(sep="\t", compression="gzip"): quotes doubled inside a quoted field
        var data = Path.Combine(_temp, "pairs.tsv.gz");
        var text = "sentence1\tsentence2\tlabel\n\"He said \"\"hi\"\" .\"\tHe greeted us .\t1\nThe cat sat .\tA cat was sitting .\t1\n" +
            "The rain stopped .\tThe rain ended .\t1\nShares rose .\tShares fell .\t0\n";
        using (var file = File.Create(data))
        using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Optimal))
            gzip.Write(System.Text.Encoding.UTF8.GetBytes(text));
        string[] args = ["train", "--model", "demo", "--data", data, "--max-steps", "1", "--batch-size", "2", "--rank", "2", "--bleu-samples", "0"];

        // was "not a UTF-8 text file (line 1: byte 0x8B ...)"; uncompressed, the quotes were trained on
        var refused = await CliRunner.RunAsync([.. args, "--out", Path.Combine(_temp, "refused")]);
        Assert.True(refused.ExitCode == 1, $"exit {refused.ExitCode}: {refused.StandardError}");
        Assert.Contains("pairs.tsv.gz: line 2: 'sentence1' is in quotes with doubled quotes inside", refused.StandardError);
        Assert.Contains("--tsv-quoting", refused.StandardError);

        var train = await CliRunner.RunAsync([.. args, "--out", Path.Combine(_temp, "quoted"), "--tsv-quoting"]);
        Assert.True(train.ExitCode == 0, train.StandardError);
        Assert.Contains("data: 3 pairs read", train.StandardError);
    }

    [Fact]
    public async Task ADatasetThatIsMissingOrAFolderIsAUsageErrorNamingIt()
    {
        // was exit 1 with "Could not find file" or "Access to the path is denied"; eval said "no such file" with exit 2
        var output = Path.Combine(_temp, "no-data");
        foreach (var (data, message) in new[] { (Path.Combine(_temp, "missing.tsv"), "--data: no such file"), (_temp, "is a folder; name a file") })
        {
            var run = await CliRunner.RunAsync("train", "--model", "demo", "--data", data, "--out", output);
            Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}: {run.StandardError}");
            Assert.Contains(message, run.StandardError);
            Assert.False(Directory.Exists(output));
        }
    }
}
