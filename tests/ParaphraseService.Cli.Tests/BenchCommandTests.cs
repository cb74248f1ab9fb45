using System.Text.Json;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public class BenchCommandTests
{
    [Fact]
    public async Task SpeculationReportsBothWaysTheFirstTokenAndWhatFollowsIt()
    {
        var run = await CliRunner.RunAsync("bench", "speculation", "--data", Fixtures.Get("demo-model", "heldout-pairs.tsv"),
            "--sources", "3", "--max-new-tokens", "12", "--clients", "2", "--json");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var report = JsonDocument.Parse(run.StandardOutput).RootElement;
        var cases = report.GetProperty("cases").EnumerateArray().ToList();
        Assert.Equal(2, cases.Count);
        var oneAtATime = cases[0];
        Assert.Equal(3, oneAtATime.GetProperty("sources").GetInt32());
        // Greedy output does not depend on speculation.
        Assert.Equal(3, oneAtATime.GetProperty("identical").GetInt32());
        Assert.InRange(oneAtATime.GetProperty("tokens").GetInt32(), 3, 36);
        Assert.True(oneAtATime.GetProperty("first_token_p50_milliseconds").GetDouble() > 0);
        Assert.True(double.IsFinite(oneAtATime.GetProperty("decode_speedup").GetDouble()));
        // a decode step's time both ways, each over its own steps
        Assert.True(oneAtATime.GetProperty("plain_step_milliseconds").GetDouble() > 0);
        Assert.True(oneAtATime.GetProperty("speculative_step_milliseconds").GetDouble() > 0);
        Assert.InRange(oneAtATime.GetProperty("acceptance_rate").GetDouble(), 0, 1);
        // The batched run has no per-request latency: said as such, not as a number.
        Assert.Equal(JsonValueKind.String, cases[1].GetProperty("first_token_p50_milliseconds").ValueKind);
        // The replay's step costs are measured here, relative to one position, for every width a draft can give.
        var ceiling = report.GetProperty("ceiling");
        var stepCost = ceiling.GetProperty("step_cost").EnumerateArray().Select(c => c.GetDouble()).ToList();
        Assert.Equal(10, stepCost.Count); // 0 (unused), then 1 to 9 positions: drafts of up to 8
        Assert.Equal(1.0, stepCost[1]);
        Assert.All(stepCost.Skip(2), c => Assert.True(c > 0));
        Assert.True(ceiling.GetProperty("first_token_steps").GetDouble() > 0);
        Assert.True(ceiling.GetProperty("oracle").GetDouble() > 0);
    }

    [Fact]
    public async Task SpeculationDataThatIsMissingOrAFolderIsAUsageErrorNamingIt()
    {
        // was exit 1 with "Could not find file '...'" or "Access to the path '...' is denied", as train and eval once said
        var folder = Directory.CreateTempSubdirectory("bench-data-").FullName;
        try
        {
            foreach (var (data, message) in new[] { (Path.Combine(folder, "missing.tsv"), "--data: no such file"), (folder, "is a folder; name a file") })
            {
                var run = await CliRunner.RunAsync("bench", "speculation", "--data", data, "--sources", "1");
                Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}: {run.StandardError}");
                Assert.Contains(message, run.StandardError);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task ProfileTimesTheStepWithoutItsHooksAndDividesTheHookedOne()
    {
        var run = await CliRunner.RunAsync("bench", "profile", "--batch", "2", "--steps", "3", "--json");

        Assert.True(run.ExitCode == 0, run.StandardError);
        var report = JsonDocument.Parse(run.StandardOutput).RootElement.EnumerateArray().Single();
        var step = report.GetProperty("step_milliseconds").GetDouble();
        Assert.True(step > 0);
        // two rows a step: tokens/s is from the step timed without hooks
        Assert.Equal(2 * 1000 / step, report.GetProperty("tokens_per_second").GetDouble(), 6);
        var hooked = report.GetProperty("hooked_step_milliseconds").GetDouble();
        var parts = report.GetProperty("parts").EnumerateArray().ToList();
        Assert.Contains(parts, p => p.GetProperty("part").GetString() == "GptJAttention");
        // the parts divide the hooked step: their times add up to it, their shares to 1
        Assert.Equal(hooked, parts.Sum(p => p.GetProperty("milliseconds_per_step").GetDouble()), 6);
        Assert.Equal(1, parts.Sum(p => p.GetProperty("share").GetDouble()), 6);
    }

    [Fact]
    public async Task ProfileStepsBeyondTheContextAreAUsageError()
    {
        var run = await CliRunner.RunAsync("bench", "profile", "--batch", "1", "--steps", "300");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--steps 300 does not fit the model's context of 512 tokens", run.StandardError);
    }

    [Theory]
    [InlineData("profile", "--steps", "0")]
    [InlineData("profile", "--batch", "2147483647")]
    [InlineData("speculation", "--data", "x.tsv", "--clients", "-1")]
    public async Task OptionsOutOfRangeAreUsageErrors(params string[] arguments)
    {
        var run = await CliRunner.RunAsync(["bench", .. arguments]);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: --", run.StandardError);
    }
}
