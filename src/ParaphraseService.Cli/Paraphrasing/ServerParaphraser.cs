using ParaphraseService.Training.Prompts;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace ParaphraseService.Cli.Paraphrasing;

/// <summary>
/// Paraphrases through a running service's <c>POST /paraphrase</c>, several lines per request (<c>texts</c>).
/// 429, 502, 503, 504, refused connections and timed-out attempts are retried with exponential backoff and jitter, or
/// after the server's Retry-After when it sends one (Polly, as the Hub client does). A 400 for a batch is retried line by
/// line, so only the lines the service refuses carry an error; any other refusal (unknown adapter, no access) ends the run.
/// </summary>
internal sealed class ServerParaphraser : IParaphraseBackend
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);
    private static readonly HttpStatusCode[] s_transient =
        [HttpStatusCode.TooManyRequests, HttpStatusCode.BadGateway, HttpStatusCode.ServiceUnavailable, HttpStatusCode.GatewayTimeout];

    private readonly HttpClient _http;
    private readonly ParaphraseSettings _settings;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private string? _model;

    /// <param name="handler">The HTTP stack (tests pass a stub); default: a plain <see cref="SocketsHttpHandler"/>.</param>
    public ServerParaphraser(Uri server, ParaphraseSettings settings, int maxBatch, ServerRetryOptions retry, Action<string> log,
        HttpMessageHandler? handler = null)
    {
        _http = new HttpClient(handler ?? new SocketsHttpHandler(), disposeHandler: true)
        {
            BaseAddress = server,
            // Each attempt has its own timeout (below); the client's own would cut the retries short.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _settings = settings;
        MaxBatch = Math.Min(maxBatch, ParaphraseSettings.MaxTextsPerRequest);
        _pipeline = Pipeline(retry, log);
        Server = server;
    }

    /// <summary>
    /// Retries on 429, 502-504, refused connections and timed-out attempts (exponential backoff with jitter, or the
    /// server's Retry-After), each attempt under its own timeout.
    /// </summary>
    internal static ResiliencePipeline<HttpResponseMessage> Pipeline(ServerRetryOptions retry, Action<string> log) =>
        new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(response => s_transient.Contains(response.StatusCode)),
                MaxRetryAttempts = retry.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = retry.BaseDelay,
                MaxDelay = retry.MaxDelay,
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, retry.MaxDelay)),
                OnRetry = args =>
                {
                    var why = args.Outcome.Result is { } r ? $"HTTP {(int)r.StatusCode}" : args.Outcome.Exception?.Message ?? "";
                    log($"retrying in {args.RetryDelay.TotalSeconds:F1} s (attempt {args.AttemptNumber + 2} of {retry.MaxAttempts}): {why}");
                    return default;
                },
            })
            .AddTimeout(retry.AttemptTimeout)
            .Build();

    public Uri Server { get; }

    public int MaxBatch { get; }

    public string Description => _model is null ? Server.ToString() : $"{Server} (model {_model})";

    public async Task<IReadOnlyList<LineOutcome>> ParaphraseAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        using var response = await _pipeline.ExecuteAsync(
            async token => await _http.PostAsJsonAsync("paraphrase", Body(texts, _settings), s_json, token), cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadFromJsonAsync<ResponseBody>(s_json, cancellationToken)
                ?? throw new InvalidOperationException($"{Server}paraphrase answered {(int)response.StatusCode} with an empty body.");
            if (body.Results.Count != texts.Count)
                throw new InvalidOperationException($"{Server}paraphrase answered {body.Results.Count} results for {texts.Count} texts.");
            _model ??= body.Demo ? $"{body.Model}, demo: random weights, text not meaningful" : body.Model;
            return body.Results.Select(r => new LineOutcome(r.Candidates, r.Dropped, null)).ToArray();
        }

        var problem = await Problem(response, cancellationToken);
        if (response.StatusCode == HttpStatusCode.BadRequest)
        {
            if (texts.Count == 1)
                return [LineOutcome.Failed(problem)];
            // Which line did the service refuse? Each alone.
            var outcomes = new List<LineOutcome>(texts.Count);
            foreach (var text in texts)
                outcomes.AddRange(await ParaphraseAsync([text], cancellationToken));
            return outcomes;
        }
        var attempts = s_transient.Contains(response.StatusCode) ? " (retries used up)" : "";
        throw new HttpRequestException($"{Server}paraphrase answered {(int)response.StatusCode}{attempts}: {problem}", null, response.StatusCode);
    }

    /// <summary>The /paraphrase request for <paramref name="texts"/> (batch lines send the same body).</summary>
    internal static object Body(IReadOnlyList<string> texts, ParaphraseSettings settings) => new
    {
        texts,
        adapter = settings.Adapter,
        candidates = settings.Candidates,
        maxNewTokens = settings.MaxNewTokens,
        temperature = settings.Temperature,
        topP = settings.TopP,
        topK = settings.TopK,
        repetitionPenalty = settings.RepetitionPenalty,
        seed = settings.Seed,
    };

    /// <summary>The server's Retry-After (seconds or a date), at most <paramref name="max"/>; null: the backoff decides.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeSpan max)
    {
        var header = response?.Headers.RetryAfter;
        var wait = header?.Delta ?? (header?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        return wait is { } w ? TimeSpan.FromTicks(Math.Clamp(w.Ticks, 0, max.Ticks)) : null;
    }

    /// <summary>A ProblemDetails as one line: its detail, or its validation errors, or its title; else the status.</summary>
    internal static async Task<string> Problem(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var json = JsonDocument.Parse(text);
            if (Problem(json.RootElement) is { } problem)
                return problem;
        }
        catch (JsonException)
        {
        }
        return string.IsNullOrWhiteSpace(text)
            ? response.ReasonPhrase ?? ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)
            : text.ReplaceLineEndings(" ")[..Math.Min(text.Length, 200)];
    }

    /// <summary>A ProblemDetails (or a batch line's error) as one line: its validation errors, else its detail, else its title.</summary>
    internal static string? Problem(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
            return null;
        if (root.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
            return string.Join(" ", errors.EnumerateObject().SelectMany(e => e.Value.EnumerateArray().Select(m => m.GetString())));
        if (root.TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.String && detail.GetString() is { Length: > 0 } d)
            return d;
        if (root.TryGetProperty("title", out var title) && title.ValueKind == JsonValueKind.String && title.GetString() is { Length: > 0 } t)
            return t;
        return null;
    }

    public void Dispose() => _http.Dispose();

    private sealed record ResponseBody(string Model, bool Demo, IReadOnlyList<ResultBody> Results);

    private sealed record ResultBody(string Input, IReadOnlyList<Candidate> Candidates, DropCounts Dropped);
}

/// <summary>How hard the server client tries.</summary>
internal sealed record ServerRetryOptions
{
    /// <summary>Attempts per request in all (1: no retry).</summary>
    public int MaxAttempts { get; init; } = 6;
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between attempts, Retry-After included.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>One attempt, from sending to the whole answer.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
