using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ParaphraseService.Cli.Commands;
using ParaphraseService.Training.Prompts;
using Polly;

namespace ParaphraseService.Cli.Paraphrasing;

/// <summary>
/// Paraphrases a whole input through a running service's <c>POST /batches</c>: every non-blank line becomes one batch
/// line (custom_id = its line number, body = the <c>/paraphrase</c> request <see cref="ServerParaphraser"/> would send
/// for it alone), the batch runs on the server in the background behind interactive requests (and survives a server
/// restart), its progress is polled to stderr, and its results are written in the format of the direct path, line for
/// line. Inputs beyond <see cref="LinesPerBatch"/> go as several batches, one after the other. Requests are retried as
/// the direct path retries them; a line the service refuses with 400 is that line's error, any other refusal (an
/// unknown adapter, a server failure) ends the run, as it does on the direct path.
/// </summary>
internal sealed class ServerBatch : IDisposable
{
    /// <summary>Lines per batch: well within the service's default Batches:MaxLines (50,000) and MaxBytes for ordinary lines.</summary>
    public const int LinesPerBatch = 10_000;

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;
    private readonly ParaphraseSettings _settings;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly Action<string> _log;
    private string? _model;

    public ServerBatch(Uri server, ParaphraseSettings settings, ServerRetryOptions retry, Action<string> log, HttpMessageHandler? handler = null)
    {
        _http = new HttpClient(handler ?? new SocketsHttpHandler(), disposeHandler: true) { BaseAddress = server, Timeout = Timeout.InfiniteTimeSpan };
        (_settings, _log, Server) = (settings, log, server);
        _pipeline = ServerParaphraser.Pipeline(retry, log);
    }

    public Uri Server { get; }

    /// <summary>How often a running batch is asked for its progress.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public string Description => _model is null ? Server.ToString() : $"{Server} (model {_model})";

    public async Task<FileSummary> RunAsync(IReadOnlyList<string> lines, TextWriter output, ProgressBar? progress, CancellationToken cancellationToken)
    {
        if (_settings.Adapter is { } adapter)
            await CheckAdapterAsync(adapter, cancellationToken);
        var outcomes = new Dictionary<int, LineOutcome>();
        var texts = lines.Select((text, i) => (Line: i + 1, Text: text)).Where(l => !string.IsNullOrWhiteSpace(l.Text)).ToList();
        var blank = lines.Count - texts.Count;
        foreach (var chunk in texts.Chunk(LinesPerBatch))
        {
            var id = await SubmitAsync(chunk, cancellationToken);
            try
            {
                await FollowAsync(id, chunk.Length, done => progress?.Report(outcomes.Count + done + blank), cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await CancelAsync(id);
                throw;
            }
            await ReadResultsAsync(id, outcomes, cancellationToken);
        }

        int paraphrased = 0, empty = 0, failed = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            LineResult result;
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                empty++;
                result = new LineResult(i + 1, lines[i], [], null, FileParaphraser.EmptyLine);
            }
            else
            {
                var outcome = outcomes.TryGetValue(i + 1, out var o) ? o
                    : throw new InvalidOperationException($"The results of {Server}batches hold no line {i + 1}.");
                if (outcome.Error is null) paraphrased++; else failed++;
                result = new LineResult(i + 1, lines[i], outcome.Candidates, outcome.Dropped, outcome.Error);
            }
            await FileParaphraser.WriteAsync(output, result);
        }
        await output.FlushAsync(cancellationToken);
        progress?.Complete(lines.Count, FileParaphraser.Detail(empty, failed));
        return new FileSummary(lines.Count, paraphrased, empty, failed);
    }

    /// <summary>An unknown adapter ends the run before any work, with the service's 404, as on the direct path.</summary>
    private async Task CheckAdapterAsync(string adapter, CancellationToken cancellationToken)
    {
        using var response = await _pipeline.ExecuteAsync(async token => await _http.GetAsync($"adapters/{Uri.EscapeDataString(adapter)}", token), cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{Server}adapters/{adapter} answered {(int)response.StatusCode}: {await ServerParaphraser.Problem(response, cancellationToken)}",
                null, response.StatusCode);
    }

    private async Task<string> SubmitAsync(IReadOnlyList<(int Line, string Text)> lines, CancellationToken cancellationToken)
    {
        var file = new StringBuilder();
        foreach (var (line, text) in lines)
            file.Append(JsonSerializer.Serialize(new { custom_id = line.ToString(CultureInfo.InvariantCulture), body = ServerParaphraser.Body([text], _settings) }, s_json)).Append('\n');
        var bytes = Encoding.UTF8.GetBytes(file.ToString());
        using var response = await _pipeline.ExecuteAsync(async token =>
        {
            var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
            return await _http.PostAsync("batches", content, token);
        }, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Accepted)
            throw new HttpRequestException($"{Server}batches answered {(int)response.StatusCode}: {await ServerParaphraser.Problem(response, cancellationToken)}", null, response.StatusCode);
        using var batch = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        var id = batch.RootElement.GetProperty("id").GetString()!;
        _log($"batch {id}: {lines.Count} lines submitted to {Server}batches");
        return id;
    }

    /// <summary>Polls the batch until it ends, reporting lines finished; a batch that was cancelled or failed ends the run.</summary>
    private async Task FollowAsync(string id, int lines, Action<int> progress, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var response = await _pipeline.ExecuteAsync(async token => await _http.GetAsync($"batches/{id}", token), cancellationToken);
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"{Server}batches/{id} answered {(int)response.StatusCode}: {await ServerParaphraser.Problem(response, cancellationToken)}",
                    null, response.StatusCode);
            using var batch = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            var root = batch.RootElement;
            progress(lines - root.GetProperty("pending").GetInt32());
            switch (root.GetProperty("status").GetString())
            {
                case "completed":
                    return;
                case "cancelled" or "failed":
                    throw new InvalidOperationException($"Batch {id} on {Server} ended {root.GetProperty("status").GetString()}" +
                        (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String ? $": {error.GetString()}" : "") + ".");
            }
            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    private async Task ReadResultsAsync(string id, Dictionary<int, LineOutcome> outcomes, CancellationToken cancellationToken)
    {
        using var response = await _pipeline.ExecuteAsync(
            async token => await _http.GetAsync($"batches/{id}/results", HttpCompletionOption.ResponseHeadersRead, token), cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{Server}batches/{id}/results answered {(int)response.StatusCode}: {await ServerParaphraser.Problem(response, cancellationToken)}",
                null, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            if (text.Length == 0) continue;
            using var result = JsonDocument.Parse(text);
            var root = result.RootElement;
            var line = int.Parse(root.GetProperty("custom_id").GetString()!, CultureInfo.InvariantCulture);
            if (root.TryGetProperty("response", out var body))
            {
                var first = body.GetProperty("results")[0];
                if (_model is null)
                {
                    var model = body.GetProperty("model").GetString();
                    _model = body.GetProperty("demo").GetBoolean() ? $"{model}, demo: random weights, text not meaningful" : model;
                }
                outcomes[line] = new LineOutcome(first.GetProperty("candidates").Deserialize<List<Candidate>>(s_json)!, first.GetProperty("dropped").Deserialize<DropCounts>(s_json), null);
                continue;
            }
            var error = root.GetProperty("error");
            var status = error.GetProperty("status").GetInt32();
            var message = ServerParaphraser.Problem(error) ?? status.ToString(CultureInfo.InvariantCulture);
            // Only what the service refuses about a line (400) is that line's error; the rest (an adapter gone, a
            // server failure) ends the run, as the same answer to POST /paraphrase would.
            if (status != (int)HttpStatusCode.BadRequest)
                throw new HttpRequestException($"{Server}batches/{id}: line {line} answered {status}: {message}", null, (HttpStatusCode)status);
            outcomes[line] = LineOutcome.Failed(message);
        }
    }

    private async Task CancelAsync(string id)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var response = await _http.PostAsync($"batches/{id}/cancel", null, timeout.Token);
            _log($"batch {id}: cancelled on {Server}");
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            _log($"batch {id}: could not be cancelled ({e.Message}); it runs on at {Server}batches/{id}");
        }
    }

    public void Dispose() => _http.Dispose();
}
