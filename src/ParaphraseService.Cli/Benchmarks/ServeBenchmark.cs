using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ParaphraseService.Cli.Benchmarks;

public sealed record ServeBenchRun(int Clients, int Requests, double Seconds, long GeneratedTokens, double TokensPerSecond,
    double LatencyP50Ms, double LatencyP99Ms, double TimeToFirstTokenP50Ms, double TimeToFirstTokenP99Ms);

/// <summary>The same runs while a fine-tune job trains on the same model, and how fast the job trained meanwhile.</summary>
public sealed record ServeBenchWithFineTune(ServeBenchRun Single, ServeBenchRun Concurrent, string JobId, int StepsDuringRuns,
    double? JobTokensPerSecond, double LatencyP50Ratio);

public sealed record ServeBenchReport(string Url, int MaxTokens, ServeBenchRun Single, ServeBenchRun Concurrent, double ThroughputRatio,
    ServeBenchWithFineTune? WithFineTune = null);

/// <summary>A fine-tune job to start for the second half of the serving benchmark.</summary>
/// <param name="Dataset">A dataset file, uploaded to the service.</param>
/// <param name="AdminKey">The service's admin API key.</param>
/// <param name="Options">The job's options (a JSON object).</param>
public sealed record ServeBenchFineTune(string Dataset, string AdminKey, JsonObject Options);

/// <summary>
/// Drives a running service over HTTP with streamed /v1/completions requests: one client at a time, then many at once,
/// and compares aggregate generated tokens per second. Every request is a real client of the real server. With a
/// fine-tune, both runs are repeated while a job trains on the same model, to show what training costs serving.
/// </summary>
public static class ServeBenchmark
{
    public static async Task<ServeBenchReport> Run(Uri url, int clients, int requestsPerClient, int maxTokens, Action<string> log, CancellationToken ct,
        ServeBenchFineTune? fineTune = null)
    {
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(10) };
        (await http.GetAsync("/health/ready", ct)).EnsureSuccessStatusCode();
        await RunClients(http, 1, 1, maxTokens, ct); // warm-up
        var single = await RunClients(http, 1, requestsPerClient, maxTokens, ct);
        log($"1 client: {single.TokensPerSecond:F1} tokens/s, p50 {single.LatencyP50Ms:F0} ms");
        var concurrent = await RunClients(http, clients, requestsPerClient, maxTokens, ct);
        log($"{clients} clients: {concurrent.TokensPerSecond:F1} tokens/s, p50 {concurrent.LatencyP50Ms:F0} ms");
        var report = new ServeBenchReport(url.ToString(), maxTokens, single, concurrent, concurrent.TokensPerSecond / single.TokensPerSecond);
        return fineTune is null ? report : report with { WithFineTune = await WithFineTune(http, fineTune, clients, requestsPerClient, maxTokens, single, log, ct) };
    }

    private static async Task<ServeBenchWithFineTune> WithFineTune(HttpClient http, ServeBenchFineTune fineTune, int clients, int requestsPerClient,
        int maxTokens, ServeBenchRun alone, Action<string> log, CancellationToken ct)
    {
        using var admin = new HttpRequestMessage(HttpMethod.Post, "/admin/fine-tunes");
        admin.Headers.Add("X-Api-Key", fineTune.AdminKey);
        await using var dataset = File.OpenRead(fineTune.Dataset);
        admin.Content = new MultipartFormDataContent
        {
            { new StringContent(fineTune.Options.ToJsonString()), "options" },
            { new StreamContent(dataset), "dataset", Path.GetFileName(fineTune.Dataset) },
        };
        using var created = await http.SendAsync(admin, ct);
        var job = JsonNode.Parse(await created.Content.ReadAsStringAsync(ct))!;
        if (!created.IsSuccessStatusCode)
            throw new InvalidOperationException($"the service refused the fine-tune ({(int)created.StatusCode}): {job["detail"] ?? job}");
        var id = job["id"]!.GetValue<string>();
        try
        {
            // Measure only once the job trains (its first step recorded), not while it waits or reads its data.
            while ((await Job(http, id, fineTune.AdminKey, ct))["step"]!.GetValue<int>() == 0)
                await Task.Delay(500, ct);
            var before = (await Job(http, id, fineTune.AdminKey, ct))["step"]!.GetValue<int>();
            var single = await RunClients(http, 1, requestsPerClient, maxTokens, ct);
            log($"1 client with a fine-tune running: {single.TokensPerSecond:F1} tokens/s, p50 {single.LatencyP50Ms:F0} ms");
            var concurrent = await RunClients(http, clients, requestsPerClient, maxTokens, ct);
            log($"{clients} clients with a fine-tune running: {concurrent.TokensPerSecond:F1} tokens/s, p50 {concurrent.LatencyP50Ms:F0} ms");
            var state = await Job(http, id, fineTune.AdminKey, ct);
            if (state["state"]!.GetValue<string>() != "running")
                throw new InvalidOperationException($"the fine-tune stopped during the measurement ({state["state"]}: {state["error"]}); give it more steps.");
            return new ServeBenchWithFineTune(single, concurrent, id, state["step"]!.GetValue<int>() - before,
                state["tokensPerSecond"]?.GetValue<double>(), single.LatencyP50Ms / alone.LatencyP50Ms);
        }
        finally
        {
            using var cancel = new HttpRequestMessage(HttpMethod.Post, $"/admin/fine-tunes/{id}/cancel");
            cancel.Headers.Add("X-Api-Key", fineTune.AdminKey);
            using var _ = await http.SendAsync(cancel, CancellationToken.None);
        }
    }

    private static async Task<JsonNode> Job(HttpClient http, string id, string adminKey, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/fine-tunes/{id}");
        request.Headers.Add("X-Api-Key", adminKey);
        using var response = await http.SendAsync(request, ct);
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
    }

    private static async Task<ServeBenchRun> RunClients(HttpClient http, int clients, int requestsPerClient, int maxTokens, CancellationToken ct)
    {
        var latencies = new List<double>();
        var firstTokens = new List<double>();
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            for (var r = 0; r < requestsPerClient; r++)
            {
                var (latency, firstToken, count) = await OneRequest(http, $"Client {client} request {r}: the weather today is", maxTokens, client * 1000 + r, ct);
                lock (latencies)
                {
                    latencies.Add(latency);
                    firstTokens.Add(firstToken);
                    tokens += count;
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        return new ServeBenchRun(clients, clients * requestsPerClient, seconds, tokens, tokens / seconds,
            Percentile(latencies, 0.5), Percentile(latencies, 0.99), Percentile(firstTokens, 0.5), Percentile(firstTokens, 0.99));
    }

    /// <summary>One streamed completion: (latency ms, time to first token ms, generated tokens from the usage chunk).</summary>
    private static async Task<(double, double, long)> OneRequest(HttpClient http, string prompt, int maxTokens, long seed, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { prompt, max_tokens = maxTokens, seed, stream = true, stream_options = new { include_usage = true } }),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        double? firstToken = null;
        long tokens = 0;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            firstToken ??= clock.Elapsed.TotalMilliseconds;
            var chunk = JsonDocument.Parse(line[6..]).RootElement;
            if (chunk.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                tokens = usage.GetProperty("completion_tokens").GetInt64();
        }
        return (clock.Elapsed.TotalMilliseconds, firstToken ?? double.NaN, tokens);
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
    }
}
