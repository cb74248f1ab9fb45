using System.Collections.Concurrent;
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

        // The batch metrics of this service alone (other tests' services publish meters of the same name in this process).
        var measured = new Dictionary<string, long>();
        using var listener = Listen(app.Services, measured);

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

        // Nothing of the batch is left in the scheduler; the metrics counted its lines.
        Assert.Equal(0, app.Services.GetRequiredService<GenerationQueue>().BackgroundCount);
        listener.RecordObservableInstruments();
        lock (measured)
        {
            Assert.Equal(193, measured.GetValueOrDefault("lines succeeded"));
            Assert.Equal(7, measured.GetValueOrDefault("lines failed"));
            Assert.Equal(0, measured["unfinished running"]);
            Assert.Equal(0, measured["unfinished queued"]);
        }
    }

    /// <summary>Sums this service's batch measurements: "lines {outcome}" and "unfinished {state}" (the gauge's last reading).</summary>
    private static System.Diagnostics.Metrics.MeterListener Listen(IServiceProvider services, Dictionary<string, long> measured)
    {
        var factory = services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name.StartsWith("paraphrase.batches.", StringComparison.Ordinal))
                    l.EnableMeasurementEvents(instrument);
            },
        };
        void Record(System.Diagnostics.Metrics.Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var tag = tags.Length > 0 ? tags[0].Value : null;
            lock (measured)
            {
                if (instrument.Name == "paraphrase.batches.lines")
                    measured[$"lines {tag}"] = measured.GetValueOrDefault($"lines {tag}") + value;
                else if (instrument.Name == "paraphrase.batches.unfinished")
                    measured[$"unfinished {tag}"] = value;
            }
        }
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task ARestartMidBatchResumesWithOnlyTheUnfinishedLines()
    {
        var jobs = Directory.CreateTempSubdirectory("batches-restart-").FullName;
        var settings = new Dictionary<string, string?> { ["FineTunes:Directory"] = jobs, ["Batches:Concurrency"] = "2" };
        var lines = Enumerable.Range(1, 60).Select(i => Line($"r{i}", Body(i, maxNewTokens: 12))).ToList();
        string id;
        await using (var first = new ServiceApplication(settings))
        {
            await first.ModelLoaded();
            using var client = first.CreateClient();
            id = (await SubmitAsync(client, lines)).Id;
            var store = first.Services.GetRequiredService<IBatchStore>();
            await WaitAsync(() => Task.FromResult(store.Get(id)!), b => b.Succeeded >= 10); // watched in the store, as it records lines
        } // stopped mid-batch: its lines in flight stay pending, the batch goes back to the queue

        var before = StoredLines(jobs, id);
        var finished = before.Where(l => l.State == "succeeded").ToList();
        output.WriteLine($"{finished.Count} of 60 lines had finished when the service stopped");
        Assert.InRange(finished.Count, 10, 59);
        Assert.Contains(before, l => l.State == "pending");
        Assert.All(before, l => Assert.InRange(l.Attempts, 0, 1));
        Assert.Equal("queued", StoredState(jobs, id)); // given back as the service stopped, for the next start to take at once

        await using var second = new ServiceApplication(settings);
        await second.ModelLoaded();
        using var again = second.CreateClient();
        var done = await FinishedAsync(again, id);
        Assert.Equal(BatchState.Completed, done.Status);
        Assert.Equal((60, 0), (done.Succeeded, done.Failed));

        // Lines finished before the restart were not run again: the same single attempt, finish time and response.
        var after = StoredLines(jobs, id);
        foreach (var line in finished)
            Assert.Equal(line, after[line.Line - 1]);
        // The others ran once after it (twice for those in flight when it stopped).
        Assert.All(after.Except(finished), l => Assert.InRange(l.Attempts, 1, 2));
        Assert.True(after.Count(l => l.Attempts == 2) <= 2,
            "at most the two lines in flight were taken twice: " + string.Join(", ", before.Zip(after).Where(p => p.Second.Attempts > 1).Select(p => $"{p.First.Line}: {p.First.State} {p.First.Attempts} -> {p.Second.Attempts}")));
        Assert.Equal(2, Claims(jobs, id));

        var results = await ResultsAsync(again, id);
        Assert.Equal(Enumerable.Range(1, 60).Select(i => $"r{i}"), results.Select(r => r.GetProperty("custom_id").GetString()));
        Assert.All(results, r => Assert.True(r.TryGetProperty("response", out _)));
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(jobs, recursive: true);
    }

    [Fact]
    public async Task CancellingARunningBatchCancelsItsUnfinishedLinesAndRunsNothingMore()
    {
        await using var app = new ServiceApplication(new() { ["Batches:Concurrency"] = "2" });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var id = (await SubmitAsync(client, Enumerable.Range(1, 100).Select(i => Line($"c{i}", Body(i, maxNewTokens: 16))))).Id;
        var store = app.Services.GetRequiredService<IBatchStore>();
        await WaitAsync(() => Task.FromResult(store.Get(id)!), b => b.Succeeded >= 3);

        using var response = await client.PostAsync($"/batches/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var cancelled = (await response.Content.ReadFromJsonAsync<Batch>(Json))!;
        Assert.Equal(BatchState.Cancelled, cancelled.Status);
        Assert.Equal(0, cancelled.Pending);
        Assert.True(cancelled.Cancelled > 0);
        Assert.Equal(100, cancelled.Succeeded + cancelled.Cancelled);
        Assert.NotNull(cancelled.FinishedAt);

        // The runner lets go at once and its lines in flight leave the scheduler; nothing is stored after the cancel.
        var runner = app.Services.GetRequiredService<BatchRunner>();
        var queue = app.Services.GetRequiredService<GenerationQueue>();
        var scheduler = app.Services.GetRequiredService<Scheduler>();
        await WaitAsync(() => Task.FromResult(store.Get(id)!), _ => runner.Running.Count == 0 && queue.BackgroundCount == 0 && scheduler.ActiveRows == 0);
        Assert.Equal(cancelled, store.Get(id));

        var results = await ResultsAsync(client, id);
        Assert.Equal(100, results.Count);
        Assert.Equal(cancelled.Succeeded, results.Count(r => r.TryGetProperty("response", out _)));
        var unfinished = results.Where(r => r.TryGetProperty("error", out _)).Select(r => r.GetProperty("error")).ToList();
        Assert.Equal(cancelled.Cancelled, unfinished.Count);
        Assert.All(unfinished, e => Assert.Equal((409, "Batch cancelled"), (e.GetProperty("status").GetInt32(), e.GetProperty("title").GetString())));

        using var twice = await client.PostAsync($"/batches/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
        Assert.Contains("already ended (cancelled)", await twice.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AnInteractiveRequestIsAdmittedAheadOfBatchLinesWaitingBeforeItAndBatchRowsStayWithinTheirShare()
    {
        // 8 rows, a quarter for background work: two greedy batch lines (one row each) decode at once, at most.
        await using var app = new ServiceApplication(new() { ["Batches:Concurrency"] = "4", ["Scheduler:BackgroundRowShare"] = "0.25" });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var queue = app.Services.GetRequiredService<GenerationQueue>();
        var taken = new List<GenerationJob>();
        var mostBackgroundRows = 0;
        // Called on the scheduler's thread as it takes each job, in order; the jobs it took before and that have not
        // ended are the ones decoding (a job ends on the same thread).
        queue.Taken += job =>
        {
            lock (taken)
            {
                if (job.Background)
                    mostBackgroundRows = Math.Max(mostBackgroundRows, 1 + taken.Count(j => j.Background && !j.IsEnded));
                taken.Add(job);
            }
        };

        // Hold the scheduler on a command of its own, so the batch lines and the request all wait before anything is admitted.
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var gate = new ManualResetEventSlim();
        var held = app.Services.GetRequiredService<ModelThreadCommands>().RunAsync(_ =>
        {
            entered.SetResult();
            gate.Wait(TimeSpan.FromMinutes(2));
            return 0;
        });
        await entered.Task.WaitAsync(TimeSpan.FromMinutes(1));
        var batch = await SubmitAsync(client, Enumerable.Range(1, 12).Select(i => Line($"p{i}", new { text = Sentences[i % Sentences.Length], temperature = 0, maxNewTokens = 8 })));
        await WaitAsync(() => GetAsync(client, batch.Id), _ => queue.BackgroundCount == 4); // the runner's four lines wait in their lane
        var interactive = client.PostAsJsonAsync("/paraphrase", new { text = "Hello there, how are you?", temperature = 0, maxNewTokens = 4 });
        await WaitAsync(() => GetAsync(client, batch.Id), _ => queue.Count == 1);
        gate.Set();
        await held;

        using (var response = await interactive)
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var done = await FinishedAsync(client, batch.Id);
        Assert.Equal(12, done.Succeeded);
        lock (taken)
        {
            Assert.False(taken[0].Background, "the interactive request is taken first, though four batch lines waited before it");
            Assert.Equal(12, taken.Count(j => j.Background));
            Assert.Equal(2, mostBackgroundRows);
        }
    }
}
