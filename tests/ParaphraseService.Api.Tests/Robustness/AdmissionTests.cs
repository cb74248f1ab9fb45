using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>Admission that cannot wedge: whole requests or nothing, limits named at once, deadlines while queued.</summary>
public sealed class AdmissionTests
{
    [Theory]
    [InlineData("Scheduler:MaxBatchRows", "2", "MaxBatchRows")]
    [InlineData("Scheduler:MaxSequenceTokens", "100", "MaxSequenceTokens")]
    [InlineData("Scheduler:MaxQueuedRequests", "0", "MaxQueuedRequests")]
    public void OptionsThatMakeDefaultRequestsImpossibleAreRefusedAtStart(string key, string value, string named) =>
        Assert.Contains(named, ServiceApplication.StartError(new() { [key] = value }).Message);

    [Fact]
    public async Task ARequestThatCanNeverFitIsRefusedAtOnceNamingTheLimit()
    {
        await using var app = new ServiceApplication(new() { ["Scheduler:MaxBatchRows"] = "4", ["Scheduler:MaxQueuedRequests"] = "2" });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var rows = await (await client.PostAsJsonAsync("/v1/completions", new { prompt = "Hi", n = 5, max_tokens = 2 })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("Scheduler:MaxBatchRows", rows.Errors("n")[0]);
        var paraphrase = await (await client.PostAsJsonAsync("/paraphrase", new { text = "Hi there.", candidates = 5 })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("Scheduler:MaxBatchRows", paraphrase.Errors("candidates")[0]);
        var queue = await (await client.PostAsJsonAsync("/paraphrase", new { texts = new[] { "One.", "Two.", "Three." } })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("Scheduler:MaxQueuedRequests", queue.Errors("texts")[0]);
    }

    [Fact]
    public async Task AFullQueueTakesNoPartOfARequestAndADeadlineEndsARequestWhileItWaits()
    {
        await using var app = new ServiceApplication(new()
        {
            ["Scheduler:MaxQueuedRequests"] = "2",
            ["Scheduler:RequestTimeoutSeconds"] = "2",
        });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var queue = app.Services.GetRequiredService<GenerationQueue>();

        // The scheduler is held inside a command, so nothing leaves the queue: whatever ends a waiting request now, it
        // is not the scheduler.
        using var release = new ManualResetEventSlim();
        var held = app.Services.GetRequiredService<ModelThreadCommands>().RunAsync(_ => release.Wait(TimeSpan.FromMinutes(1)));
        try
        {
            var b = client.PostAsJsonAsync("/v1/completions", new { prompt = "b", max_tokens = 2 });
            await WaitUntil(() => queue.Count == 1);

            // C has two prompts and one place is left: no part of C is queued.
            var c = await client.PostAsJsonAsync("/v1/completions", new { prompt = new[] { "c1", "c2" }, max_tokens = 2 });
            var refused = await c.AssertProblemAsync(HttpStatusCode.TooManyRequests);
            Assert.Equal("https://tools.ietf.org/html/rfc6585#section-4", refused.GetProperty("type").GetString());
            Assert.Equal("1", c.Headers.RetryAfter?.ToString());
            Assert.Equal(1, queue.Count);

            // B's deadline passes while it waits: 504, and it leaves the queue.
            var timedOut = await (await b.WaitAsync(TimeSpan.FromMinutes(1))).AssertProblemAsync(HttpStatusCode.GatewayTimeout);
            Assert.Contains("deadline", timedOut.Detail());
            Assert.Equal(0, queue.Count);
        }
        finally
        {
            release.Set();
            await held;
        }
        // The scheduler goes on as before.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/completions", new { prompt = "d", max_tokens = 2 })).StatusCode);
    }

    /// <summary>Polls a condition the service reaches on its own (no fixed sleeps), up to a minute.</summary>
    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in a minute");
            await Task.Delay(10);
        }
    }
}
