using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Testing;

namespace ParaphraseService.Cli.Tests;

/// <summary><c>paraphrase file</c>, run as a process, with the demo model in the process and against the service on loopback.</summary>
public sealed class FileCommandTests : IDisposable
{
    private static readonly string[] s_lines =
    [
        "The meeting has been moved to Friday afternoon.",
        "",
        "Please send me the report before noon.",
        "   ",
        "She said \"hello\" to the café owner.",
    ];

    private readonly string _folder = Directory.CreateTempSubdirectory("paraphrase-file-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task DemoModelWritesOneJsonObjectPerInputLineAndMarksBlankLines()
    {
        var input = WriteInput(s_lines);
        var output = Path.Combine(_folder, "out.jsonl");

        var run = await CliRunner.RunAsync("file", "--in", input, "--out", output, "--model", "demo", "--max-new-tokens", "6", "--seed", "7", "--batch-size", "2");

        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Equal("", run.StandardOutput); // results go to the file; progress and notes to stderr
        Assert.Contains("file: 5/5 lines (100%)", run.StandardError);
        var results = ReadResults(output);
        Assert.Equal(s_lines.Length, results.Count);
        for (var i = 0; i < s_lines.Length; i++)
        {
            Assert.Equal(i + 1, results[i].GetProperty("line").GetInt32());
            Assert.Equal(s_lines[i], results[i].GetProperty("input").GetString());
            var candidates = results[i].GetProperty("candidates");
            Assert.Equal(JsonValueKind.Array, candidates.ValueKind);
            if (string.IsNullOrWhiteSpace(s_lines[i]))
            {
                Assert.Equal("empty line", results[i].GetProperty("error").GetString());
                Assert.Equal(0, candidates.GetArrayLength());
            }
            else
            {
                Assert.Equal(JsonValueKind.Null, results[i].GetProperty("error").ValueKind);
                var dropped = results[i].GetProperty("dropped");
                // Three candidates sampled: each is kept or counted as dropped.
                Assert.Equal(3, candidates.GetArrayLength() + dropped.GetProperty("empty").GetInt32() +
                    dropped.GetProperty("copies").GetInt32() + dropped.GetProperty("duplicates").GetInt32());
                Assert.All(candidates.EnumerateArray(), c => Assert.False(string.IsNullOrWhiteSpace(c.GetProperty("text").GetString())));
            }
        }
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp")); // the temporary file became out.jsonl

        // Seeded per line and candidate, not per batch: one line per batch gives the same file.
        var single = Path.Combine(_folder, "single.jsonl");
        var again = await CliRunner.RunAsync("file", "--in", input, "--out", single, "--model", "demo", "--max-new-tokens", "6", "--seed", "7", "--batch-size", "1");
        Assert.True(again.ExitCode == 0, again.StandardError);
        Assert.Equal(File.ReadAllText(output), File.ReadAllText(single));
    }

    [Fact]
    public async Task StdinToStdout()
    {
        var run = await CliRunner.RunWithInputAsync("First line to rewrite.\n\nSecond line to rewrite.\n",
            "file", "--in", "-", "--max-new-tokens", "4", "--temperature", "0");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var lines = run.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        var results = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([1, 2, 3], results.Select(r => r.GetProperty("line").GetInt32()));
        Assert.Equal("empty line", results[1].GetProperty("error").GetString());
        Assert.DoesNotContain("seed:", run.StandardError); // greedy: no seed to report
    }

    [Theory]
    [InlineData("does not exist", "file", "--in", "/no/such/texts.txt")]
    [InlineData("does not exist", "file", "--in", "-", "--out", "/no/such/folder/out.jsonl")]
    [InlineData("--candidates must be 1-8", "file", "--in", "-", "--candidates", "9")]
    [InlineData("--batch-size must be 1-32", "file", "--in", "-", "--batch-size", "64")]
    [InlineData("not both", "file", "--in", "-", "--model", "demo", "--server", "http://127.0.0.1:9")]
    [InlineData("--server must be an http", "file", "--in", "-", "--server", "ftp://example")]
    [InlineData("--batch-threshold must be -1", "file", "--in", "-", "--server", "http://127.0.0.1:9", "--batch-threshold", "-2")]
    public async Task UsageErrorsExitTwoWithOneLineAndWriteNothing(string reason, params string[] args)
    {
        var run = await CliRunner.RunWithInputAsync("", args);

        Assert.Equal(2, run.ExitCode);
        var error = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains(reason, error);
        Assert.DoesNotContain("   at ", run.StandardError);
        Assert.Equal("", run.StandardOutput);
    }

    [Fact]
    public async Task AnInputLineThatIsNotUtf8IsRefusedNamingItBeforeAnythingIsWritten()
    {
        // It was read as U+FFFD and paraphrased as if it were text.
        var input = Path.Combine(_folder, "latin1.txt");
        File.WriteAllBytes(input, [.. "good line\n"u8, .. "caf"u8, 0xE9, .. " bad\n"u8, .. "last\n"u8]);
        var output = Path.Combine(_folder, "latin1.jsonl");

        var run = await CliRunner.RunAsync("file", "--in", input, "--out", output, "--model", "demo", "--max-new-tokens", "2");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"{input}: line 2 is not UTF-8 text", run.StandardError);
        Assert.DoesNotContain("model:", run.StandardError); // refused before the model loaded
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task ACommandLineThatDoesNotParseIsAUsageErrorToo()
    {
        var run = await CliRunner.RunAsync("file", "--no-such-option");
        Assert.Equal(2, run.ExitCode);
    }

    [Fact]
    public async Task AgainstTheServiceOnLoopback()
    {
        await using var service = new ServiceApplication();
        var url = (await service.StartOnLoopback()).ToString();
        var input = WriteInput(s_lines);
        var output = Path.Combine(_folder, "server.jsonl");

        var run = await CliRunner.RunAsync("file", "--in", input, "--out", output, "--server", url, "--max-new-tokens", "6", "--seed", "3", "--batch-size", "2");

        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Contains("model demo", run.StandardError);
        var results = ReadResults(output);
        Assert.Equal(s_lines.Length, results.Count);
        Assert.Equal("empty line", results[1].GetProperty("error").GetString());
        foreach (var result in results.Where(r => r.GetProperty("error").ValueKind == JsonValueKind.Null))
        {
            Assert.True(result.TryGetProperty("dropped", out _));
            // The service scores its candidates (MiniLM similarity, novelty) and sorts them best first.
            var scores = result.GetProperty("candidates").EnumerateArray().Select(c =>
            {
                Assert.InRange(c.GetProperty("similarity").GetSingle(), -1f, 1f);
                Assert.InRange(c.GetProperty("novelty").GetSingle(), 0f, 1f);
                return c.GetProperty("score").GetSingle();
            }).ToList();
            Assert.Equal(scores.OrderDescending(), scores);
        }

        // A refusal that is not about one line (an unknown adapter) ends the run: exit 1, and no output file.
        var unknown = Path.Combine(_folder, "unknown.jsonl");
        var refused = await CliRunner.RunAsync("file", "--in", input, "--out", unknown, "--server", url, "--adapter", "no-such-adapter");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("404", refused.StandardError);
        Assert.False(File.Exists(unknown));
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp"));
    }

    [Fact]
    public async Task AboveTheThresholdTheServerRunsItAsABatchAndTheOutputIsTheDirectPaths()
    {
        // One line in flight on the server, one text per request on the direct path: each line is decoded alone either
        // way, so not even the rounding of a batched matrix product can differ.
        await using var service = new ServiceApplication(new() { ["Batches:Concurrency"] = "1" });
        var url = (await service.StartOnLoopback()).ToString();
        var lines = Enumerable.Range(0, 12).Select(i => $"Line {i}: the meeting has been moved to Friday afternoon .").ToList();
        lines[4] = "";
        lines[7] = string.Join(' ', Enumerable.Repeat("word", 2100)); // longer than the demo's context: that line's error
        var input = WriteInput(lines);
        var store = service.Services.GetRequiredService<ParaphraseService.Api.Batches.IBatchStore>();
        string[] Common(string output) => ["file", "--in", input, "--out", output, "--server", url, "--max-new-tokens", "6", "--seed", "3", "--batch-size", "1"];

        var batched = Path.Combine(_folder, "batched.jsonl");
        var viaBatch = await CliRunner.RunAsync([.. Common(batched), "--batch-threshold", "10"]);
        Assert.Equal(1, viaBatch.ExitCode); // the long line failed; the output is complete
        Assert.Contains("through POST /batches", viaBatch.StandardError);
        Assert.Contains("1 of 12 lines failed", viaBatch.StandardError);
        var batch = Assert.Single(store.List(10)); // it went through the service's batches
        Assert.Equal((11, 10, 1), (batch.Lines, batch.Succeeded, batch.Failed));

        var direct = Path.Combine(_folder, "direct.jsonl");
        var viaParaphrase = await CliRunner.RunAsync([.. Common(direct), "--batch-threshold", "12"]); // 12 lines: not above it
        Assert.Equal(1, viaParaphrase.ExitCode);
        Assert.DoesNotContain("POST /batches", viaParaphrase.StandardError);
        Assert.Single(store.List(10)); // no new batch

        Assert.Equal(File.ReadAllText(direct), File.ReadAllText(batched));
        var results = ReadResults(batched);
        Assert.Equal(12, results.Count);
        Assert.Equal("empty line", results[4].GetProperty("error").GetString());
        Assert.Contains("context", results[7].GetProperty("error").GetString());
        Assert.NotEmpty(results[0].GetProperty("candidates").EnumerateArray());

        // Stdin goes the same way, and an unknown adapter ends the run before any batch is submitted.
        var piped = await CliRunner.RunWithInputAsync(string.Join('\n', lines) + "\n", [.. Common("-")[..2], "-", .. Common("-")[3..], "--batch-threshold", "10"]);
        Assert.Equal(File.ReadAllText(direct), piped.StandardOutput);
        var unknown = await CliRunner.RunAsync([.. Common(Path.Combine(_folder, "unknown.jsonl")), "--batch-threshold", "0", "--adapter", "no-such-adapter"]);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("404", unknown.StandardError);
        Assert.False(File.Exists(Path.Combine(_folder, "unknown.jsonl")));
        Assert.Equal(2, store.List(10).Count);
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp"));
    }

    [Fact]
    public async Task ALineTooLongForTheContextIsThatLinesErrorAndTheRunGoesOn()
    {
        // The demo model's context is 2048 tokens; this line alone is longer.
        var input = WriteInput(["A short line.", string.Join(' ', Enumerable.Repeat("word", 2100)), "Another short line."]);
        var output = Path.Combine(_folder, "long.jsonl");

        var run = await CliRunner.RunAsync("file", "--in", input, "--out", output, "--max-new-tokens", "4", "--seed", "1");

        Assert.Equal(1, run.ExitCode); // a non-blank line failed; the output is still complete
        Assert.Contains("1 of 3 lines failed", run.StandardError);
        var results = ReadResults(output);
        Assert.Equal(3, results.Count);
        Assert.Contains("context", results[1].GetProperty("error").GetString());
        Assert.Equal(JsonValueKind.Null, results[0].GetProperty("error").ValueKind);
        Assert.Equal(JsonValueKind.Null, results[2].GetProperty("error").ValueKind);
    }

    private string WriteInput(IEnumerable<string> lines)
    {
        var path = Path.Combine(_folder, $"in-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, string.Join('\n', lines) + "\n");
        return path;
    }

    private static List<JsonElement> ReadResults(string path) =>
        File.ReadAllLines(path).Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();
}
