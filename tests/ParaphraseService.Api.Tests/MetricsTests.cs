using System.Net.Http.Json;

namespace ParaphraseService.Api.Tests;

/// <summary>One service, one completion through it, one scrape of /metrics: what every test here reads.</summary>
public sealed class MetricsAfterOneCompletion : IAsyncLifetime
{
    private readonly ServiceApplication _app = new();

    public string Text { get; private set; } = "";

    public string[] Lines => Text.Split('\n');

    public async Task InitializeAsync()
    {
        await _app.ModelLoaded();
        using var client = _app.CreateClient();
        (await client.PostAsJsonAsync("/v1/completions", new { prompt = "Hi", max_tokens = 3, temperature = 0 })).EnsureSuccessStatusCode();
        Text = await client.GetStringAsync("/metrics");
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();
}

public class MetricsTests(MetricsAfterOneCompletion metrics) : IClassFixture<MetricsAfterOneCompletion>
{
    [Fact]
    public void PrometheusEndpointReportsTheSchedulersFigures()
    {
        foreach (var name in new[] { "paraphrase_generated_tokens", "paraphrase_batch_rows", "paraphrase_time_to_first_token", "paraphrase_request_duration", "paraphrase_queue_depth", "paraphrase_active_rows" })
            Assert.Contains(name, metrics.Text);
        var tokens = metrics.Lines.First(l => l.StartsWith("paraphrase_generated_tokens", StringComparison.Ordinal) && !l.StartsWith('#'));
        // Other tests in this process run their own apps on the same meter name, so the count is at least this request's.
        Assert.True(double.Parse(tokens.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 3, tokens);
    }

    [Fact]
    public void LatencyHistogramsHaveBucketsInSeconds()
    {
        // The SDK's default boundaries (0, 5, 10, 25 ... 10,000) would put every latency below a few seconds in one bucket.
        foreach (var name in new[] { "paraphrase_time_to_first_token_seconds_bucket", "paraphrase_request_duration_seconds_bucket" })
            foreach (var bound in new[] { "0.01", "0.1", "1", "30", "600" })
                Assert.Contains(metrics.Lines, l => l.StartsWith(name, StringComparison.Ordinal) && l.Contains($"le=\"{bound}\""));
        Assert.Contains(metrics.Lines, l => l.StartsWith("paraphrase_batch_rows", StringComparison.Ordinal) && l.Contains("le=\"16\""));
    }
}
