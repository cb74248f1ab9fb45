using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ParaphraseService.Cli.Benchmarks;

/// <summary>Interactive latency over one run of requests.</summary>
public sealed record InteractiveLatency(int Clients, int Requests, double Seconds, double P50Ms, double P99Ms, double MeanMs);

/// <summary>Interactive latency alone and while a batch runs, and how fast the batch went meanwhile.</summary>
public sealed record BatchBenchReport(string Url, int Candidates, int MaxNewTokens, InteractiveLatency Alone, InteractiveLatency WithBatch,
    double P50Ratio, double P99Ratio, string BatchId, int BatchLines, int BatchLinesDuringRun, double BatchLinesPerSecond);

/// <summary>
/// What a running batch costs interactive users: the same interactive <c>POST /paraphrase</c> requests timed with the
/// service otherwise idle, then again while a batch of the same requests runs (its lines share the decode steps, at most
/// their share of the rows, admitted only when no interactive request waits). Every request is a real client of the
/// real server; the batch is cancelled at the end.
/// </summary>
public static class BatchBenchmark
{
    private static readonly string[] Texts =
    [
        "The meeting has been moved to Friday afternoon .", "Please send the report before noon .", "The train was late because of the snow .",
        "She bought a new car last week .", "Our team won the final match .", "The museum opens at nine in the morning .",
        "He forgot his keys at the office .", "The price of coffee went up again .",
    ];

    public static async Task<BatchBenchReport> Run(Uri url, int clients, int requestsPerClient, int batchLines, int candidates, int maxNewTokens,
        Action<string> log, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(10) };
        (await http.GetAsync("/health/ready", ct)).EnsureSuccessStatusCode();
        await RunClients(http, 1, 2, candidates, maxNewTokens, ct); // warm-up
        var alone = await RunClients(http, clients, requestsPerClient, candidates, maxNewTokens, ct);
        log($"alone: p50 {alone.P50Ms:F0} ms, p99 {alone.P99Ms:F0} ms");

        var file = new StringBuilder();
        for (var i = 0; i < batchLines; i++)
            file.Append(JsonSerializer.Serialize(new { custom_id = $"b{i}", body = Body(Texts[i % Texts.Length], candidates, maxNewTokens, 1_000_000 + i) })).Append('\n');
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(file.ToString()));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        using var created = await http.PostAsync("/batches", content, ct);
        var batch = JsonNode.Parse(await created.Content.ReadAsStringAsync(ct))!;
        if (!created.IsSuccessStatusCode)
            throw new InvalidOperationException($"the service refused the batch ({(int)created.StatusCode}): {batch["detail"] ?? batch}");
        var id = batch["id"]!.GetValue<string>();
        try
        {
            // Measure only once the batch runs (a line finished), not while it waits to be claimed.
            while (Finished(await Batch(http, id, ct)) == 0)
                await Task.Delay(100, ct);
            var before = await Batch(http, id, ct);
            var clock = Stopwatch.StartNew();
            var withBatch = await RunClients(http, clients, requestsPerClient, candidates, maxNewTokens, ct);
            var after = await Batch(http, id, ct);
            var seconds = clock.Elapsed.TotalSeconds;
            log($"with the batch running: p50 {withBatch.P50Ms:F0} ms, p99 {withBatch.P99Ms:F0} ms");
            if (after["status"]!.GetValue<string>() != "running")
                throw new InvalidOperationException($"the batch ended during the measurement ({after["status"]}); give it more lines (--batch-lines).");
            var during = Finished(after) - Finished(before);
            return new BatchBenchReport(url.ToString(), candidates, maxNewTokens, alone, withBatch, withBatch.P50Ms / alone.P50Ms, withBatch.P99Ms / alone.P99Ms,
                id, batchLines, during, during / seconds);
        }
        finally
        {
            using var _ = await http.PostAsync($"/batches/{id}/cancel", null, CancellationToken.None);
        }
    }

    private static int Finished(JsonNode batch) => batch["succeeded"]!.GetValue<int>() + batch["failed"]!.GetValue<int>();

    private static async Task<JsonNode> Batch(HttpClient http, string id, CancellationToken ct) =>
        JsonNode.Parse(await http.GetStringAsync($"/batches/{id}", ct))!;

    private static object Body(string text, int candidates, int maxNewTokens, long seed) => new { text, candidates, maxNewTokens, seed };

    private static async Task<InteractiveLatency> RunClients(HttpClient http, int clients, int requestsPerClient, int candidates, int maxNewTokens, CancellationToken ct)
    {
        var latencies = new List<double>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            for (var r = 0; r < requestsPerClient; r++)
            {
                var started = Stopwatch.StartNew();
                using var response = await http.PostAsJsonAsync("/paraphrase", Body(Texts[(client + r) % Texts.Length], candidates, maxNewTokens, client * 1000 + r), ct);
                response.EnsureSuccessStatusCode();
                await response.Content.ReadAsByteArrayAsync(ct);
                lock (latencies) latencies.Add(started.Elapsed.TotalMilliseconds);
            }
        }));
        var sorted = latencies.Order().ToList();
        double Percentile(double p) => sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
        return new InteractiveLatency(clients, sorted.Count, clock.Elapsed.TotalSeconds, Percentile(0.5), Percentile(0.99), sorted.Average());
    }
}
