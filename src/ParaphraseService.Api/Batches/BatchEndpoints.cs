using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using ParaphraseService.Api.Admin;
using ParaphraseService.Api.Requests;

namespace ParaphraseService.Api.Batches;

/// <summary>
/// <c>/batches</c>: submit a JSONL file of paraphrase requests to run in the background, follow it, download its
/// results, cancel it. Public like <c>/paraphrase</c> (the callers are the same pipelines), each batch reachable by its
/// unguessable id; listing every batch, which would hand out everyone's ids, is admin-only (<c>GET /admin/batches</c>).
/// </summary>
public static class BatchEndpoints
{
    private const string FileField = "file";
    private const string ResultsType = "application/jsonl";

    /// <summary>Content types read as the JSONL file itself.</summary>
    private static readonly string[] s_jsonl = ["application/jsonl", "application/x-jsonlines", "application/x-ndjson", "application/json", "text/plain"];

    public static RouteGroupBuilder MapBatches(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/batches").WithTags("Batches");
        group.MapPost("", Create)
            .WithSummary("Submit a batch: a JSONL file of POST /paraphrase requests, one per line, run in the background behind interactive requests.")
            .WithDescription("""
                The body is the file itself (Content-Type application/jsonl, application/x-ndjson or text/plain) or a multipart/form-data
                form with the file in the field 'file'. Each line: {"custom_id": "...", "body": {...a /paraphrase request...}} (OpenAI's
                "method": "POST" and "url": "/paraphrase" may be given too), or the request's fields beside custom_id. Every line is checked as
                /paraphrase checks a request; a bad line (not JSON, a bad field, a duplicate custom_id) becomes that line's error in the results and
                the rest run. The whole file is refused only when it is empty, not JSONL at all (400), or beyond Batches:MaxLines or
                Batches:MaxBytes (413). Answers 202 with the batch and its Location.
                """)
            // One list: the framework answers 415 for any other type before the handler runs (ProblemReasons words it).
            .Accepts<string>("application/jsonl", "application/x-jsonlines", "application/x-ndjson", "application/json", "text/plain", "multipart/form-data")
            .Produces<Batch>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .DisableAntiforgery();
        group.MapGet("/{id}", Get)
            .WithSummary("A batch's status (queued, running, completed, cancelled, failed) and its counts: lines, succeeded, failed, cancelled, pending.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/{id}/results", Results)
            .WithSummary("The results as JSONL, one line per input line in input order: {line, custom_id, response} or {line, custom_id, error: {status, title, detail, errors}}.")
            .WithDescription("Available once the batch has ended (completed, cancelled or failed); before that 409 with its progress. " +
                "Lines of a cancelled batch that had not run carry the error 'Batch cancelled'.")
            .Produces(StatusCodes.Status200OK, contentType: ResultsType)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        group.MapPost("/{id}/cancel", Cancel)
            .WithSummary("Cancel a queued or running batch: lines not finished are cancelled at once and no more work runs; finished lines keep their results.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        app.MapAdminGroup("/admin/batches", "Batches")
            .MapGet("", List)
            .WithSummary("Every batch (or the newest 'limit', 1-1000, default 100), newest first. Admin: it shows every client's batch ids.");
        return group;
    }

    private static async Task<Results<Accepted<Batch>, ProblemHttpResult>> Create(HttpRequest request, IBatchStore store, BatchRunner runner,
        BatchMetrics metrics, IOptions<BatchOptions> options, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider time, CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.Enabled)
            return TypedResults.Problem("Batches are turned off on this server (Batches:Enabled).", statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "Batches disabled");
        var multipart = request.HasFormContentType;
        if (!multipart && !IsJsonl(request.ContentType))
            // Untitled: the framework titles it as every 415 of the service ("Unsupported Media Type").
            return TypedResults.Problem(
                $"Send the JSONL file as the body (Content-Type {string.Join(", ", s_jsonl)}) or as the field '{FileField}' of a multipart/form-data form ({ProblemReasons.Sent(request)}).",
                statusCode: StatusCodes.Status415UnsupportedMediaType);
        // The form's boundaries and headers come on top of the file.
        var limit = o.MaxBytes + (multipart ? 64 * 1024 : 0);
        if (request.ContentLength > limit)
            return BatchFile.FileTooLarge(o.MaxBytes);
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = limit;

        BatchFile.Result read;
        try
        {
            if (multipart)
            {
                var form = await MultipartForms.ReadAsync(request, new FormOptions { MultipartBodyLengthLimit = o.MaxBytes, ValueCountLimit = 8 }, cancellationToken);
                var unknown = form.Keys.Concat(form.Files.Select(f => f.Name)).Where(k => k != FileField).Distinct().ToList();
                if (unknown.Count > 0)
                    return TypedResults.Problem($"'{RequestRules.Quote(unknown[0])[1..^1]}' is not a field of this form: send the file as '{FileField}'.",
                        statusCode: StatusCodes.Status400BadRequest, title: "Invalid batch request");
                if (form.Files.GetFiles(FileField) is not [var file])
                    return TypedResults.Problem($"Send the JSONL file once, in the field '{FileField}'.", statusCode: StatusCodes.Status400BadRequest,
                        title: "Invalid batch request");
                await using var stream = file.OpenReadStream();
                read = await BatchFile.ReadAsync(stream, o, json.Value.SerializerOptions, cancellationToken);
            }
            else
            {
                read = await BatchFile.ReadAsync(request.Body, o, json.Value.SerializerOptions, cancellationToken);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return BatchFile.FileTooLarge(o.MaxBytes);
        }
        catch (InvalidDataException e) when (e.Message.Contains("length limit", StringComparison.OrdinalIgnoreCase))
        {
            return BatchFile.FileTooLarge(o.MaxBytes);
        }
        catch (Exception e) when (multipart && e is InvalidDataException or IOException && !cancellationToken.IsCancellationRequested)
        {
            // A body that says multipart but is not (no closing boundary, broken headers).
            return TypedResults.Problem($"The multipart form cannot be read: {e.Message.Trim()}", statusCode: StatusCodes.Status400BadRequest, title: "Bad request");
        }
        if (read.Problem is { } problem)
            return problem;

        var id = "batch_" + Guid.NewGuid().ToString("N");
        store.Create(id, read.Lines!, time.GetUtcNow());
        if (read.Lines!.Count(l => l.Error is not null) is > 0 and var refused)
            metrics.Finished(LineState.Failed, refused);
        // The batch as created (queued), read before the runner is woken: after it, the answer would depend on whether the
        // runner had picked the batch up yet.
        var created = store.Get(id)!;
        runner.Wake();
        return TypedResults.Accepted($"/batches/{id}", created);
    }

    private static bool IsJsonl(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media) && s_jsonl.Contains(media.MediaType.Value, StringComparer.OrdinalIgnoreCase);

    private static Results<Ok<Batch>, ProblemHttpResult> Get(string id, IBatchStore store) =>
        store.Get(id) is { } batch ? TypedResults.Ok(batch) : NotFound(id);

    private static Ok<IReadOnlyList<Batch>> List(IBatchStore store, int? limit) => TypedResults.Ok(store.List(Math.Clamp(limit ?? 100, 1, 1000)));

    private static Results<PushStreamHttpResult, ProblemHttpResult> Results(string id, IBatchStore store, HttpContext context)
    {
        if (store.Get(id) is not { } batch)
            return NotFound(id);
        if (!batch.IsFinished)
        {
            context.Response.Headers.RetryAfter = "5";
            return TypedResults.Problem(
                $"Batch {id} is {Name(batch.Status)}: {batch.Lines - batch.Pending} of {batch.Lines} lines finished. Its results can be downloaded once it ends " +
                $"(GET /batches/{id} says when).", statusCode: StatusCodes.Status409Conflict, title: "Batch not finished");
        }
        var unfinished = batch.Status == BatchState.Cancelled
            ? new BatchLineError(StatusCodes.Status409Conflict, "Batch cancelled", "The batch was cancelled before this line ran.")
            : new BatchLineError(StatusCodes.Status500InternalServerError, "Batch failed", $"The batch failed before this line ran: {batch.Error}");
        return TypedResults.Stream(async stream =>
        {
            // Line by line from the store, in pages: a large batch is never held whole.
            var writer = PipeWriter.Create(stream);
            var written = 0;
            foreach (var line in store.Lines(id))
            {
                BatchJson.WriteResult(writer, line, unfinished);
                if (++written % 64 == 0)
                    await writer.FlushAsync(context.RequestAborted);
            }
            await writer.CompleteAsync();
        }, ResultsType + "; charset=utf-8", fileDownloadName: $"{id}.jsonl");
    }

    private static Results<Ok<Batch>, ProblemHttpResult> Cancel(string id, IBatchStore store, BatchRunner runner, TimeProvider time)
    {
        if (store.Get(id) is not { } batch)
            return NotFound(id);
        if (!store.Cancel(id, time.GetUtcNow()))
            return TypedResults.Problem($"Batch {id} has already ended ({Name(store.Get(id)?.Status ?? batch.Status)}).", statusCode: StatusCodes.Status409Conflict,
                title: "Batch ended");
        runner.Stop(id);
        return TypedResults.Ok(store.Get(id)!);
    }

    private static string Name(BatchState state) => state.ToString().ToLowerInvariant();

    private static ProblemHttpResult NotFound(string id) =>
        TypedResults.Problem($"There is no batch {RequestRules.Quote(id)}.", statusCode: StatusCodes.Status404NotFound, title: "Batch not found");
}
