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

    // Greedy decoding decodes one row and copies it: more choices than batch rows are refused only where each takes a row.
    [Fact]
    public async Task GreedyChoicesBeyondTheBatchRowsAreServedFromOneRow()
    {
        await using var app = new ServiceApplication(new() { ["Scheduler:MaxBatchRows"] = "3" });
        await app.ModelLoaded();
        using var client = app.CreateClient();

        var completion = await (await client.PostAsJsonAsync("/v1/completions", new { prompt = "Hello", n = 5, max_tokens = 4, temperature = 0 })).JsonAsync();
        var choices = completion.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3, 4], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.Single(choices.Select(c => c.GetProperty("text").GetString()).Distinct());
        Assert.NotEmpty(choices[0].GetProperty("text").GetString()!);

        // Below 1e-5 is greedy too.
        var chat = await (await client.PostAsJsonAsync("/v1/chat/completions",
            new { messages = new[] { new { role = "user", content = "Hello" } }, n = 8, max_tokens = 4, temperature = 1e-6 })).JsonAsync();
        var messages = chat.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("message").GetProperty("content").GetString()).ToList();
        Assert.Equal(8, messages.Count);
        Assert.Single(messages.Distinct());

        var paraphrase = await (await client.PostAsJsonAsync("/paraphrase", new { text = "The meeting was moved to Friday.", candidates = 8, temperature = 0 })).JsonAsync();
        Assert.Equal(1, paraphrase.GetProperty("results")[0].GetProperty("generated").GetInt32());

        // Sampled, each choice is a row of its own.
        var sampled = await (await client.PostAsJsonAsync("/v1/completions", new { prompt = "Hello", n = 4, max_tokens = 4, temperature = 0.5 }))
            .AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Equal("Invalid request", sampled.GetProperty("title").GetString());
        Assert.StartsWith("4 candidates need 4 batch rows; this service decodes at most 3 at once (Scheduler:MaxBatchRows).", sampled.Errors("n").Single());
        Assert.Equal($"n: {sampled.Errors("n").Single()}", sampled.Detail());
        Assert.Equal("n", sampled.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(sampled.Detail(), sampled.GetProperty("error").GetProperty("message").GetString());
        var sampledParaphrase = await (await client.PostAsJsonAsync("/paraphrase", new { text = "The meeting was moved to Friday.", candidates = 4 }))
            .AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.StartsWith("4 candidates need 4 batch rows", sampledParaphrase.Errors("candidates").Single());
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
