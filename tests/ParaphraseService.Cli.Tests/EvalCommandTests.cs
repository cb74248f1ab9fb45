using System.Text.Json;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public sealed class EvalCommandTests : IDisposable
{
    private static readonly string HeldOutText = Fixtures.Get("demo-model", "heldout.txt");
    private static readonly string HeldOutPairs = Fixtures.Get("demo-model", "heldout-pairs.tsv");
    private readonly string _temp = Directory.CreateTempSubdirectory("eval-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task TextPerplexityOfTheDemoModelIsTheReferenceFigure()
    {
        var run = await CliRunner.RunAsync("eval", "--model", "demo", "--data", HeldOutText, "--json");

        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Contains("eval: ", run.StandardError); // progress
        var json = JsonDocument.Parse(run.StandardOutput).RootElement;
        var reference = JsonDocument.Parse(File.ReadAllText(Fixtures.Get("demo-model", "reference.json"))).RootElement.GetProperty("heldout_text");
        Assert.Equal("text", json.GetProperty("mode").GetString());
        Assert.Equal(reference.GetProperty("window").GetInt32(), json.GetProperty("window").GetInt32());
        Assert.Equal(reference.GetProperty("predicted").GetInt64(), json.GetProperty("scored_tokens").GetInt64());
        var result = Assert.Single(json.GetProperty("results").EnumerateArray());
        Assert.Equal("none", result.GetProperty("quantization").GetString());
        Assert.Equal(reference.GetProperty("perplexity").GetDouble(), result.GetProperty("perplexity").GetDouble(), 1e-3);
        Assert.Equal(0, json.GetProperty("comparisons").GetArrayLength());
    }

    [Fact]
    public async Task CompareNoneWithNoneAgreesEverywhere()
    {
        var run = await CliRunner.RunAsync("eval", "--model", "demo", "--data", HeldOutText, "--compare", "none,none", "--limit", "3", "--window", "128", "--json");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var json = JsonDocument.Parse(run.StandardOutput).RootElement;
        Assert.Equal(3, json.GetProperty("sequences").GetInt32());
        Assert.Equal(3 * 127, json.GetProperty("scored_tokens").GetInt64());
        var results = json.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(["none#1", "none#2"], results.Select(r => r.GetProperty("name").GetString()));
        Assert.Equal(results[0].GetProperty("nll").GetDouble(), results[1].GetProperty("nll").GetDouble());
        var comparison = Assert.Single(json.GetProperty("comparisons").EnumerateArray());
        Assert.Equal(1.0, comparison.GetProperty("top1_agreement").GetDouble());
        Assert.Equal(0.0, comparison.GetProperty("mean_kl").GetDouble(), 1e-9);
        Assert.Equal(0.0, comparison.GetProperty("perplexity_increase").GetDouble(), 1e-9);
    }

    [Fact]
    public async Task CompareNoneWithInt8PrintsBothSideBySide()
    {
        var run = await CliRunner.RunAsync("eval", "--model", "demo", "--data", HeldOutText, "--compare", "none,int8", "--int8-kernel", "dequantize", "--limit", "4");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var lines = run.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Contains(lines, l => l.StartsWith("none ", StringComparison.Ordinal) && l.Contains("perplexity"));
        Assert.Contains(lines, l => l.StartsWith("int8 (dequantize) ", StringComparison.Ordinal) && l.Contains("perplexity"));
        Assert.Contains(lines, l => l.StartsWith("int8 (dequantize) vs none: perplexity ", StringComparison.Ordinal) && l.Contains("top-1 agreement") && l.Contains("KL"));
    }

    [Fact]
    public async Task PairsWithAnAdapterScoreTargetTokensForTheBaseAndTheAdapter()
    {
        var run = await CliRunner.RunAsync("eval", "--model", "demo", "--adapter", DemoModel.AdapterFolder, "--data", HeldOutPairs, "--limit", "24",
            "--bleu-samples", "4", "--json");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var json = JsonDocument.Parse(run.StandardOutput).RootElement;
        Assert.Equal("pairs", json.GetProperty("mode").GetString());
        Assert.Equal(24, json.GetProperty("pairs").GetInt32());
        Assert.Equal("Original: {text}\nParaphrase:", json.GetProperty("template").GetString()); // the adapter's own
        var results = json.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(["base", $"adapter {DemoModel.AdapterName}"], results.Select(r => r.GetProperty("name").GetString()));
        Assert.True(results[1].GetProperty("nll").GetDouble() < results[0].GetProperty("nll").GetDouble());
        var paraphrases = json.GetProperty("paraphrases").EnumerateArray().ToList();
        Assert.Equal(2, paraphrases.Count);
        Assert.All(paraphrases, p => Assert.Equal(4, p.GetProperty("count").GetInt32()));
    }

    [Theory]
    [InlineData(2, "--window applies to a text file", "--data", "PAIRS", "--window", "64")]
    [InlineData(2, "--template, --max-length and --bleu-samples apply to pairs", "--data", "TEXT", "--bleu-samples", "3")]
    [InlineData(2, "Unknown --format 'xml'", "--data", "TEXT", "--format", "xml")]
    [InlineData(2, "--compare needs at least two", "--data", "TEXT", "--compare", "none")]
    [InlineData(2, "not both", "--data", "TEXT", "--compare", "none,int8", "--quantization", "int8")]
    [InlineData(2, "no such file", "--data", "/no/such/file.txt")]
    [InlineData(2, "--window must be 2-512", "--data", "TEXT", "--window", "4096")]
    [InlineData(2, "--limit must be at least 1", "--data", "TEXT", "--limit", "0")]
    [InlineData(1, "Unknown quantization 'int4'", "--data", "TEXT", "--compare", "none,int4")]
    [InlineData(1, "not UTF-8 text", "--data", "INVALID")]
    [InlineData(1, "line 2", "--data", "BADPAIRS")]
    public async Task BadInputIsOneErrorLine(int exitCode, string reason, params string[] args)
    {
        var invalid = Path.Combine(_temp, "invalid.txt");
        await File.WriteAllBytesAsync(invalid, [.. "ok "u8, 0xFF, 0xFE]);
        var badPairs = Path.Combine(_temp, "bad.jsonl");
        await File.WriteAllTextAsync(badPairs, "{\"source\": \"a b\", \"target\": \"b a\"}\nnot json\n");
        var resolved = args.Select(a => a switch { "TEXT" => HeldOutText, "PAIRS" => HeldOutPairs, "INVALID" => invalid, "BADPAIRS" => badPairs, _ => a });

        var run = await CliRunner.RunAsync(["eval", "--model", "demo", .. resolved]);

        Assert.Equal(exitCode, run.ExitCode);
        var line = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains(reason, line);
        Assert.Equal("", run.StandardOutput);
    }
}
