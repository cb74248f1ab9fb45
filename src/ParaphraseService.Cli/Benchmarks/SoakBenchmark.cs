using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace ParaphraseService.Cli.Benchmarks;

/// <param name="Statuses">Final status of every request by code (a saturated service with a small queue answers only 200 and 429).</param>
/// <param name="Disconnects">Requests whose client went away on purpose after the first streamed token.</param>
/// <param name="TransportErrors">Requests that got no HTTP answer at all (should be none).</param>
/// <param name="ResidentGrowth">Resident memory at the end relative to after the warm-up (target: under 5%).</param>
public sealed record SoakReport(string Url, double Minutes, int Clients, IReadOnlyDictionary<int, long> Statuses, long Disconnects, long TransportErrors,
    double LatencyP50Ms, double LatencyP99Ms, long ResidentBytesAfterWarmUp, long ResidentBytesEnd, long ResidentBytesMax, double ResidentGrowth);

/// <summary>
/// Keeps a running service saturated for a while with a mix of clients (paraphrase and completions, streamed and not,
/// some going away mid-stream) and reports what they got: status counts, latency of the served requests, and how
/// resident memory moved after a warm-up (read from the service's own /status.json).
/// </summary>
public static class SoakBenchmark
{
    public static async Task<SoakReport> Run(Uri url, TimeSpan duration, int clients, Action<string> log, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(5) };
        (await http.GetAsync("/health/ready", ct)).EnsureSuccessStatusCode();
        var statuses = new Dictionary<int, long>();
        var latencies = new List<double>();
        long disconnects = 0, transportErrors = 0;
        var warmUp = TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(1).Ticks, duration.Ticks / 10));
        var clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(duration);

        var memory = Task.Run(async () =>
        {
            await Task.Delay(warmUp, ct);
            var start = await ResidentBytes(http, ct);
            var max = start;
            log($"after the {warmUp.TotalSeconds:F0} s warm-up: resident {start / 1e6:F0} MB");
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                var now = await ResidentBytes(http, ct);
                max = Math.Max(max, now);
                lock (statuses)
                    log($"{clock.Elapsed.TotalMinutes:F1} min: resident {now / 1e6:F0} MB; " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")));
            }
            return (start, max);
        }, ct);

        await Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var kind = (client + n) % 5;
                var watch = Stopwatch.StartNew();
                try
                {
                    var (status, disconnected) = await Send(http, kind, client * 1_000_000L + n, stop.Token);
                    lock (statuses)
                    {
                        if (disconnected) disconnects++;
                        else statuses[status] = statuses.GetValueOrDefault(status) + 1;
                        if (status == 200 && !disconnected) latencies.Add(watch.Elapsed.TotalMilliseconds);
                    }
                    // A refused client backs off as Retry-After asks (1 s), so the queue stays saturated, not hammered.
                    if (status == 429) await Task.Delay(TimeSpan.FromSeconds(1), stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref transportErrors);
                }
            }
        }, ct)));
        var (after, maxBytes) = await memory;
        var end = await ResidentBytes(http, ct);
        maxBytes = Math.Max(maxBytes, end);
        var sorted = latencies.Order().ToList();
        double Percentile(double p) => sorted.Count == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
        return new SoakReport(url.ToString(), duration.TotalMinutes, clients, statuses, disconnects, transportErrors, Percentile(0.5), Percentile(0.99),
            after, end, maxBytes, (double)end / after - 1);
    }

    /// <summary>One request of a kind (0-4): paraphrase, paraphrase streamed, completion, completion streamed, completion streamed and abandoned.</summary>
    private static async Task<(int Status, bool Disconnected)> Send(HttpClient http, int kind, long seed, CancellationToken ct)
    {
        object body = kind switch
        {
            0 or 1 => new { text = "The meeting has been moved to Friday afternoon because of the holiday.", candidates = 3, maxNewTokens = 16, seed, stream = kind == 1 },
            _ => new { prompt = "The weather today is", max_tokens = 16, n = 2, seed, stream = kind >= 3 },
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, kind <= 1 ? "/paraphrase" : "/v1/completions") { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode != HttpStatusCode.OK || kind != 4)
        {
            await response.Content.ReadAsStringAsync(ct);
            return ((int)response.StatusCode, false);
        }
        // Abandoned: the first streamed line, then the client goes away (the service must free its rows).
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        await reader.ReadLineAsync(ct);
        return (200, true);
    }

    private static async Task<long> ResidentBytes(HttpClient http, CancellationToken ct)
    {
        using var status = JsonDocument.Parse(await http.GetStringAsync("/status.json", ct));
        return status.RootElement.GetProperty("serving").GetProperty("residentBytes").GetInt64();
    }
}
