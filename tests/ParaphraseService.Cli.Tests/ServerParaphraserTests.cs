using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ParaphraseService.Cli.Paraphrasing;

namespace ParaphraseService.Cli.Tests;

/// <summary>The server client's retries and per-line errors, against a stub HTTP handler (no network).</summary>
public class ServerParaphraserTests
{
    private static readonly ServerRetryOptions s_fast = new() { MaxAttempts = 4, BaseDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task QueueFullAndNotReadyAreRetriedHonouringRetryAfter()
    {
        var handler = new Stub(
            _ => Answer(HttpStatusCode.TooManyRequests, retryAfterSeconds: 1),
            _ => Answer(HttpStatusCode.ServiceUnavailable),
            texts => Ok(texts));
        var log = new List<string>();
        using var client = new ServerParaphraser(new Uri("http://127.0.0.1:1/"), new ParaphraseSettings(), 8, s_fast, log.Add, handler);

        var clock = Stopwatch.StartNew();
        var outcomes = await client.ParaphraseAsync(["one", "two"], CancellationToken.None);

        Assert.Equal(3, handler.Calls);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"waited only {clock.Elapsed} after Retry-After: 1");
        Assert.Equal(2, log.Count);
        Assert.StartsWith("retrying in 1.0 s (attempt 2 of 4): HTTP 429", log[0]);
        Assert.Equal(["one (rewritten)", "two (rewritten)"], outcomes.Select(o => o.Candidates.Single().Text));
        Assert.Equal(0.9f, outcomes[0].Candidates[0].Score);
    }

    [Fact]
    public async Task WhenRetriesAreUsedUpTheRunEnds()
    {
        var handler = new Stub(_ => Answer(HttpStatusCode.ServiceUnavailable));
        using var client = new ServerParaphraser(new Uri("http://127.0.0.1:1/"), new ParaphraseSettings(), 8, s_fast, _ => { }, handler);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.ParaphraseAsync(["one"], CancellationToken.None));

        Assert.Equal(4, handler.Calls);
        Assert.Contains("503 (retries used up): Not ready", failure.Message);
    }

    [Fact]
    public async Task ABatchTheServiceRefusesIsSentLineByLineSoOnlyTheBadLineFails()
    {
        var handler = new Stub(texts => texts.Contains("bad")
            ? Answer(HttpStatusCode.BadRequest, """{"title":"One or more validation errors occurred.","errors":{"texts[1]":["The text's prompt is too long."]}}""")
            : Ok(texts));
        using var client = new ServerParaphraser(new Uri("http://127.0.0.1:1/"), new ParaphraseSettings(), 8, s_fast, _ => { }, handler);

        var outcomes = await client.ParaphraseAsync(["good", "bad", "fine"], CancellationToken.None);

        Assert.Equal(4, handler.Calls); // the batch, then each line
        Assert.Null(outcomes[0].Error);
        Assert.Equal("The text's prompt is too long.", outcomes[1].Error);
        Assert.Empty(outcomes[1].Candidates);
        Assert.Null(outcomes[2].Error);
    }

    private static HttpResponseMessage Ok(IReadOnlyList<string> texts) => new(HttpStatusCode.OK)
    {
        Content = JsonContent.Create(new
        {
            model = "stub", demo = false,
            results = texts.Select(t => new { input = t, candidates = new[] { new { text = $"{t} (rewritten)", similarity = 0.9, novelty = 0.5, score = 0.9 } }, dropped = new { empty = 0, copies = 0, duplicates = 0 } }),
        }),
    };

    private static HttpResponseMessage Answer(HttpStatusCode status, string? body = null, int? retryAfterSeconds = null)
    {
        var response = new HttpResponseMessage(status)
        {
            Content = new StringContent(body ?? """{"title":"Not ready","detail":"Not ready"}""", System.Text.Encoding.UTF8, "application/problem+json"),
        };
        if (retryAfterSeconds is { } seconds)
            response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));
        return response;
    }

    /// <summary>Answers each call with the next function (the last one repeats), given the request's texts.</summary>
    private sealed class Stub(params Func<IReadOnlyList<string>, HttpResponseMessage>[] answers) : HttpMessageHandler
    {
        public int Calls { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Assert.Equal("/paraphrase", request.RequestUri!.AbsolutePath);
            var body = await request.Content!.ReadFromJsonAsync<JsonElement>(cancellationToken);
            var texts = body.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToList();
            return answers[Math.Min(Calls++, answers.Length - 1)](texts);
        }
    }
}
