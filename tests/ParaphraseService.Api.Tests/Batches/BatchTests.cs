using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.Scheduling;
using Xunit.Abstractions;
using static ParaphraseService.Api.Tests.Batches.BatchFixtures;

namespace ParaphraseService.Api.Tests.Batches;

/// <summary>
/// Server-side batches end to end: the real service with the demo model, batches stored in a real SQLite file, run by
/// the real scheduler's background lane.
/// </summary>
public class BatchTests(ITestOutputHelper output)
{
    private static readonly string[] Sentences =
    [
        "The meeting has been moved to Friday afternoon .", "Please send the report before noon .", "The train was late because of the snow .",
        "She bought a new car last week .", "Our team won the final match .", "The museum opens at nine in the morning .",
        "He forgot his keys at the office .", "The price of coffee went up again .",
    ];

    /// <summary>A valid request for line <paramref name="i"/>: sampled and seeded, every fifth greedy.</summary>
    private static Dictionary<string, object> Body(int i, int maxNewTokens = 8)
    {
        var body = new Dictionary<string, object> { ["text"] = Sentences[i % Sentences.Length], ["candidates"] = 2, ["maxNewTokens"] = maxNewTokens, ["seed"] = i };
        if (i % 5 == 0) body["temperature"] = 0;
        return body;
    }

    [Fact]
    public async Task TwoHundredLinesWithBadOnesCompleteInOrderWithPerLineErrorsAndGoodLinesAnswerAsParaphraseDoes()
    {
        // One line in flight: each runs alone in its step, as the /paraphrase calls compared below do, so the rounding
        // of a batched matrix product cannot differ (see the README on batch composition).
        await using var app = new ServiceApplication(new() { ["Batches:Concurrency"] = "1" });
        await app.ModelLoaded();
        using var client = app.CreateClient();

        var lines = Enumerable.Range(1, 200).Select(i => Line($"l{i}", Body(i))).ToList();
        lines[6] = "{not json";
        lines[18] = Line("l19", new { text = "Hello there.", tempreature = 0.5 });
        lines[32] = Line("l33", new { text = "Hello there.", temperature = 5 });
        lines[49] = Line("l50", new { text = "Hello there.", adapter = "no-such-adapter" });
        lines[76] = Line("l3", new { text = "Hello there." });
        lines[99] = "";
        lines[119] = JsonSerializer.Serialize(new { custom_id = "l120", text = Sentences[0], candidates = 2, maxNewTokens = 8, seed = 120 }); // flat
        lines[149] = """{"custom_id": 150, "body": {"text": "Hello there."}}""";

        var submitted = await SubmitAsync(client, lines);
        Assert.Equal(200, submitted.Lines);
        Assert.Equal(BatchState.Queued, submitted.Status);
        Assert.Equal(6, submitted.Failed); // refused as the file was read: all but the unknown adapter, which only running finds
        var done = await FinishedAsync(client, submitted.Id);
        Assert.Equal(BatchState.Completed, done.Status);
        Assert.Equal((193, 7, 0, 0), (done.Succeeded, done.Failed, done.Cancelled, done.Pending));
        Assert.NotNull(done.StartedAt);
        Assert.True(done.FinishedAt >= done.StartedAt);

        var results = await ResultsAsync(client, submitted.Id);
        Assert.Equal(Enumerable.Range(1, 200), results.Select(r => r.GetProperty("line").GetInt32()));
        string Error(int line) => results[line - 1].GetProperty("error").GetProperty("detail").GetString()!;
        int Status(int line) => results[line - 1].GetProperty("error").GetProperty("status").GetInt32();
        Assert.Contains("not valid JSON", Error(7));
        Assert.Contains("tempreature: is not a known field", Error(19));
        Assert.Contains("temperature: must be in [0, 2]", Error(33));
        Assert.Contains("no-such-adapter", Error(50));
        Assert.Equal(404, Status(50));
        Assert.Contains("'l3' is line 3's already", Error(77));
        Assert.Contains("blank", Error(100));
        Assert.Contains("custom_id: must be a string", Error(150));
        Assert.All(new[] { 7, 19, 33, 77, 100, 150 }, line => Assert.Equal(400, Status(line)));
        Assert.Equal(JsonValueKind.Null, results[149].GetProperty("custom_id").ValueKind);
        Assert.Equal("l3", results[76].GetProperty("custom_id").GetString());
        var good = Enumerable.Range(1, 200).Except([7, 19, 33, 50, 77, 100, 150]).ToList();
        Assert.All(good, line =>
        {
            Assert.Equal($"l{line}", results[line - 1].GetProperty("custom_id").GetString());
            Assert.False(results[line - 1].TryGetProperty("error", out _), $"line {line}: {results[line - 1]}");
        });

        // A good line's response is what /paraphrase answers for the same request (sampled and seeded, greedy, flat).
        foreach (var line in new[] { 3, 10, 120, 199 })
        {
            var body = line == 120 ? new Dictionary<string, object> { ["text"] = Sentences[0], ["candidates"] = 2, ["maxNewTokens"] = 8, ["seed"] = 120 } : Body(line);
            using var direct = await client.PostAsJsonAsync("/paraphrase", body);
            Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
            var expected = await direct.Content.ReadFromJsonAsync<JsonElement>();
            var batched = results[line - 1].GetProperty("response");
            Assert.Equal(expected.GetProperty("results").GetRawText(), batched.GetProperty("results").GetRawText());
            Assert.Equal(expected.GetProperty("usage").GetRawText(), batched.GetProperty("usage").GetRawText());
            Assert.Equal(expected.GetProperty("adapter").GetString(), batched.GetProperty("adapter").GetString());
        }
        output.WriteLine($"200 lines in {(done.FinishedAt!.Value - done.StartedAt!.Value).TotalSeconds:F1} s");

        // Nothing of the batch is left in the scheduler.
        Assert.Equal(0, app.Services.GetRequiredService<GenerationQueue>().BackgroundCount);
    }
}
