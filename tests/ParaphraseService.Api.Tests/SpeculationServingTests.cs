using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Tests;

/// <summary>The service decodes speculatively by default; a request can opt out; the output is the same either way.</summary>
public class SpeculationServingTests
{
    // A prompt that repeats itself gives the prompt lookup something to propose at nearly every step.
    private const string Prompt = "The red fox jumps over the lazy dog. The red fox jumps over the lazy dog. The red fox jumps over the";

    private static async Task<string> Complete(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/v1/completions", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return string.Join("|", json.RootElement.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
    }

    /// <summary>Sums what this app's scheduler adds to a counter (other tests' apps run in the same process).</summary>
    private sealed class Counted : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _total;

        public Counted(IServiceProvider services, string instrument)
        {
            var meters = services.GetRequiredService<IMeterFactory>();
            _listener.InstrumentPublished = (i, listener) =>
            {
                if (i.Meter.Scope == meters && i.Name == instrument) listener.EnableMeasurementEvents(i);
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _total, value));
            _listener.Start();
        }

        public long Total => Interlocked.Read(ref _total);
        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task SpeculationIsOnByDefaultCanBeRefusedPerRequestAndChangesNothingInTheOutput()
    {
        // A tiny random GPT-2: its greedy text soon repeats itself, so its own output gives the lookup matches.
        await using var app = new ServiceApplication(new() { ["Model:Source"] = TinyFamilyModels.Folder("gpt2"), ["Model:Device"] = "cpu" });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        using var drafted = new Counted(app.Services, "paraphrase.speculation.drafted_tokens");
        using var accepted = new Counted(app.Services, "paraphrase.speculation.accepted_tokens");
        foreach (var (temperature, seed) in new[] { (0.0, (long?)null), (0.9, 5L) })
        {
            object Body(bool? speculation) => new { prompt = Prompt, max_tokens = 24, n = 2, temperature, seed, speculation };
            var before = drafted.Total;
            var plain = await Complete(client, Body(false));
            var afterPlain = drafted.Total;
            var speculative = await Complete(client, Body(null));

            Assert.Equal(plain, speculative);
            Assert.Equal(before, afterPlain);             // opted out: nothing drafted
            // By default drafts are verified; greedy text from this model repeats itself, its sampled text hardly ever does.
            if (temperature == 0)
                Assert.True(drafted.Total > afterPlain, $"nothing drafted for {speculative}");
        }
        Assert.True(accepted.Total > 0);
    }

    [Theory]
    [InlineData("MaxDraftTokens", "0")]
    [InlineData("MinDraftTokens", "0")]
    [InlineData("MinDraftTokens", "65")]
    public void SpeculationSettingsOutOfRangeStopTheServiceAtStart(string setting, string value) =>
        Assert.Contains($"Scheduler:Speculation: {setting} must be 1-64",
            ServiceApplication.StartError(new() { [$"Scheduler:Speculation:{setting}"] = value }).Message);
}
