using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Admin;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Requests;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Loading;
using ParaphraseService.Training.Datasets;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// <c>/admin/fine-tunes</c> (admin API key): start a LoRA fine-tune on a dataset, list and inspect jobs, follow one as
/// Server-Sent Events, cancel. Every error is a ProblemDetails.
/// </summary>
public static class FineTuneEndpoints
{
    private const string OptionsField = "options", DatasetField = "dataset";

    public static RouteGroupBuilder MapFineTunes(this IEndpointRouteBuilder app)
    {
        var group = app.MapAdminGroup("/admin/fine-tunes", "Fine-tunes");
        group.MapPost("", Create)
            .WithSummary("Start a fine-tune: a multipart form with 'dataset' (PAWS TSV, TSV/CSV with named columns, or JSONL) and " +
                "'options' (JSON), or a JSON body with the options and 'datasetPath', a file under FineTunes:DatasetRoots.")
            .Accepts<FineTuneRequest>("application/json", "multipart/form-data")
            .Produces<FineTuneJob>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        group.MapGet("", List).WithSummary("Every fine-tune job, newest first.");
        group.MapGet("/{id}", Get).WithSummary("One job: state, step, epoch, loss curves, tokens/s, ETA, metrics, error.");
        group.MapGet("/{id}/events", Events)
            .WithSummary("Server-Sent Events: 'state' (the job) first, then 'step', 'eval', 'checkpoint', 'scored', and 'state' " +
                "on every change; the stream ends when the job does.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/{id}/cancel", Cancel).WithSummary("Cancel a job: a queued one at once, a running one before its next step.");
        return group;
    }

    private static async Task<Results<Accepted<FineTuneJob>, ValidationProblem, ProblemHttpResult>> Create(
        HttpRequest request, IFineTuneJobStore jobs, FineTuneRunner runner, IAdapterStorage adapters, ModelHost host,
        IOptions<FineTuneOptions> options, TimeProvider time, CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.Enabled)
            return TypedResults.Problem("Fine-tuning is turned off on this server (FineTunes:Enabled).", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Fine-tuning disabled");
        if (host.Model is not { } model)
            return TypedResults.Problem(host.LoadError is { } error
                    ? $"The base model failed to load ({error}); fine-tunes train on it, so none can start."
                    : "The base model is still loading; fine-tunes train on it, so none can start yet. Try again once /health/ready answers 200.",
                statusCode: StatusCodes.Status503ServiceUnavailable, title: "Model not loaded");
        var json = request.HasJsonContentType();
        var limit = json ? FineTuneRequests.MaxOptionsBytes : o.MaxDatasetBytes + (1 << 20);
        if (request.ContentLength > limit)
            return json ? OptionsTooLarge() : TooLarge(o.MaxDatasetBytes);
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = limit;

        var id = "ft-" + Guid.NewGuid().ToString("N")[..12];
        var folder = jobs.JobFolder(id);
        try
        {
            FineTuneRequest fineTune;
            string datasetFile;
            if (request.HasFormContentType)
            {
                var form = await MultipartForms.ReadAsync(request, new FormOptions
                {
                    MultipartBodyLengthLimit = o.MaxDatasetBytes, ValueCountLimit = 8, ValueLengthLimit = FineTuneRequests.MaxOptionsBytes,
                }, cancellationToken);
                var unknown = form.Keys.Concat(form.Files.Select(f => f.Name)).Where(k => k is not (OptionsField or DatasetField)).Distinct().ToList();
                if (unknown.Count > 0)
                    return TypedResults.ValidationProblem(unknown.ToDictionary(k => k, k => new[] { $"'{k}' is not a field of this form: send '{OptionsField}' (JSON) and '{DatasetField}' (the file)" }),
                        title: "Invalid fine-tune request");
                if (form[OptionsField].Count > 1)
                    return Invalid(OptionsField, $"Send the '{OptionsField}' field once.");
                var parsed = Parse(Encoding.UTF8.GetBytes(form[OptionsField].ToString()), OptionsField, model, o, multipart: true);
                if (parsed.Problem is { } problem) return problem;
                fineTune = parsed.Request!;
                if (form.Files.GetFiles(DatasetField) is not [var file])
                    return Invalid(DatasetField, $"Send the dataset as one file in the '{DatasetField}' field.");
                datasetFile = Path.Combine(folder, SafeFileName(file.FileName));
                Directory.CreateDirectory(folder);
                await using (var target = File.Create(datasetFile))
                    await file.CopyToAsync(target, cancellationToken);
            }
            else if (json)
            {
                if (await ReadBody(request, FineTuneRequests.MaxOptionsBytes, cancellationToken) is not { } body)
                    return OptionsTooLarge();
                var parsed = Parse(body, "body", model, o, multipart: false);
                if (parsed.Problem is { } problem) return problem;
                fineTune = parsed.Request!;
                if (ServerDataset(fineTune.DatasetPath, o) is not { } source)
                    return Invalid("datasetPath", o.DatasetRoots.Count == 0
                        ? "This server takes no dataset paths (FineTunes:DatasetRoots is empty): upload the file as multipart/form-data."
                        : $"Name an existing file under one of: {string.Join(", ", o.DatasetRoots)}.");
                // Copying a named pipe would wait for a writer, and the request with it.
                if (RegularFiles.Problem(source) is { } notAFile)
                    return Invalid("datasetPath", $"'{fineTune.DatasetPath}' is {notAFile}.");
                if (new FileInfo(source).Length > o.MaxDatasetBytes)
                    return TooLarge(o.MaxDatasetBytes);
                datasetFile = Path.Combine(folder, SafeFileName(Path.GetFileName(source)));
                Directory.CreateDirectory(folder);
                File.Copy(source, datasetFile);
            }
            else
            {
                // Untitled: the framework titles it as every 415 of the service ("Unsupported Media Type").
                return TypedResults.Problem($"Send a multipart/form-data form (dataset, options) or JSON options with 'datasetPath' ({ProblemReasons.Sent(request)}).",
                    statusCode: StatusCodes.Status415UnsupportedMediaType);
            }

            if (adapters.BuiltInProblem(fineTune.Adapter!) is { } builtIn)
                return Cleanup(folder, TypedResults.Problem(builtIn + ".",
                    statusCode: StatusCodes.Status409Conflict, title: "Adapter built in"));
            if (!fineTune.Replace && adapters.Exists(fineTune.Adapter!))
                return Cleanup(folder, TypedResults.Problem($"An adapter named '{fineTune.Adapter}' exists; set replace to overwrite it when the job succeeds.",
                    statusCode: StatusCodes.Status409Conflict, title: "Adapter exists"));
            if (jobs.UnfinishedJobFor(fineTune.Adapter!) is { } other)
                return Cleanup(folder, TypedResults.Problem($"Job {other} is already producing adapter '{fineTune.Adapter}'.",
                    statusCode: StatusCodes.Status409Conflict, title: "Adapter being trained"));

            // The whole dataset is read now, so a bad file is refused here with its line numbers, not later in the job.
            // A gzip-compressed file may hold no more text than an uncompressed one may be.
            var prepared = FineTuneRequests.Prepare(datasetFile, fineTune, model.Tokenizer, o.MaxDatasetBytes);
            try
            {
                jobs.Create(id, fineTune, datasetFile, JsonSerializer.SerializeToElement(prepared.Summary, FineTuneJobStore.Json), time.GetUtcNow());
            }
            catch (FineTuneConflictException e)
            {
                return Cleanup(folder, TypedResults.Problem(e.Message, statusCode: StatusCodes.Status409Conflict, title: "Adapter being trained"));
            }
            runner.Enqueue(id, prepared);
            return TypedResults.Accepted($"/admin/fine-tunes/{id}", jobs.Get(id)!);
        }
        catch (DatasetException e)
        {
            return Cleanup(folder, TypedResults.ValidationProblem(
                new Dictionary<string, string[]> { [DatasetField] = [.. e.Problems] },
                detail: e.Message, title: "The dataset cannot be used"));
        }
        catch (InvalidDataException e) when (e.Message.Contains("body length limit", StringComparison.OrdinalIgnoreCase))
        {
            return Cleanup(folder, TooLarge(o.MaxDatasetBytes));
        }
        catch (InvalidDataException e)
        {
            return Cleanup(folder, TypedResults.Problem($"The multipart form cannot be read: {e.Message}", statusCode: StatusCodes.Status400BadRequest, title: "Bad request"));
        }
        catch (BadHttpRequestException e)
        {
            return Cleanup(folder, e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? (json ? OptionsTooLarge() : TooLarge(o.MaxDatasetBytes))
                : TypedResults.Problem(e.Message, statusCode: e.StatusCode, title: "Bad request"));
        }
        catch
        {
            DeleteFolder(folder);
            throw;
        }
    }

    /// <summary>The request's options read and checked against the server and the model: the request, or the problem to answer.</summary>
    private static (FineTuneRequest? Request, ValidationProblem? Problem) Parse(byte[] json, string container, LoadedModel model, FineTuneOptions options, bool multipart)
    {
        if (FineTuneRequests.Parse(json, container, out var problems) is not { } request)
            return (null, TypedResults.ValidationProblem(problems, title: "Invalid fine-tune options"));
        problems = FineTuneRequests.Problems(request, options, model, multipart);
        return problems.Count > 0
            ? (null, TypedResults.ValidationProblem(problems, title: "Invalid fine-tune options"))
            : (request, null);
    }

    /// <summary>The body, or null when it is longer than <paramref name="limit"/> bytes.</summary>
    private static async Task<byte[]?> ReadBody(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (await request.Body.ReadAsync(chunk, cancellationToken) is var read and > 0)
        {
            if (buffer.Length + read > limit) return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    private static Ok<IReadOnlyList<FineTuneJob>> List(IFineTuneJobStore jobs) => TypedResults.Ok(jobs.List());

    private static Results<Ok<FineTuneJob>, ProblemHttpResult> Get(string id, IFineTuneJobStore jobs) =>
        jobs.Get(id) is { } job ? TypedResults.Ok(job) : NotFound(id);

    private static Results<Accepted<FineTuneJob>, ProblemHttpResult> Cancel(string id, IFineTuneJobStore jobs, FineTuneRunner runner)
    {
        if (jobs.Get(id) is not { } job)
            return NotFound(id);
        if (!runner.Cancel(id))
            return TypedResults.Problem($"Job {id} has already ended ({job.State.ToString().ToLowerInvariant()}).", statusCode: StatusCodes.Status409Conflict, title: "Job ended");
        return TypedResults.Accepted($"/admin/fine-tunes/{id}", jobs.Get(id)!);
    }

    private static Results<ServerSentEventsResult<object>, ProblemHttpResult> Events(string id, IFineTuneJobStore jobs, FineTuneEvents events, CancellationToken cancellationToken)
    {
        // Follow first, then read the state: no event can fall between the two.
        var subscription = events.Follow(id);
        if (jobs.Get(id) is not { } job)
        {
            subscription.Dispose();
            return NotFound(id);
        }
        return TypedResults.ServerSentEvents(Stream(job, subscription, cancellationToken));
    }

    private static async IAsyncEnumerable<SseItem<object>> Stream(FineTuneJob job, FineTuneEvents.Subscription subscription,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using (subscription)
        {
            yield return new SseItem<object>(job, "state");
            if (job.IsFinished) yield break;
            await foreach (var e in subscription.Reader.ReadAllAsync(cancellationToken))
            {
                yield return new SseItem<object>(e.Data, e.Type);
                if (e.Data is FineTuneJob { IsFinished: true }) yield break;
            }
        }
    }

    private static ValidationProblem Invalid(string field, string message) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = [message] }, title: "Invalid fine-tune request");

    /// <summary>A dataset file the server may read: an existing file under a configured root, after resolving '..'.</summary>
    private static string? ServerDataset(string? path, FineTuneOptions options)
    {
        if (string.IsNullOrWhiteSpace(path)) return null;
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or PathTooLongException or NotSupportedException)
        {
            return null;
        }
        var allowed = options.DatasetRoots.Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r)) + Path.DirectorySeparatorChar)
            .Any(root => full.StartsWith(root, StringComparison.Ordinal));
        return allowed && File.Exists(full) ? full : null;
    }

    /// <summary>The upload's file name without folders or odd characters (its extension tells the format).</summary>
    private static string SafeFileName(string name)
    {
        var leaf = Path.GetFileName(name.Replace('\\', '/'));
        var safe = new string(leaf.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray()).TrimStart('.');
        return safe.Length == 0 ? "dataset" : safe;
    }

    private static ProblemHttpResult TooLarge(long limit) => TypedResults.Problem(
        $"The dataset may be at most {limit:N0} bytes (FineTunes:MaxDatasetBytes).", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Dataset too large");

    private static ProblemHttpResult OptionsTooLarge() => TypedResults.Problem(
        $"The options JSON may be at most {FineTuneRequests.MaxOptionsBytes:N0} bytes.", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Options too large");

    private static ProblemHttpResult NotFound(string id) =>
        TypedResults.Problem($"No fine-tune job '{id}'.", statusCode: StatusCodes.Status404NotFound, title: "Job not found");

    private static T Cleanup<T>(string folder, T result)
    {
        DeleteFolder(folder);
        return result;
    }

    private static void DeleteFolder(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
