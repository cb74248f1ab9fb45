using System.Text.Json;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.OpenAi;

/// <summary>What OpenAI's completions and chat completions answers share: finish reasons, usage, the event stream.</summary>
public static class OpenAiResponses
{
    public static string FinishReason(GenerationResult result) =>
        result.FinishReason is Model.Generation.FinishReason.Length or Model.Generation.FinishReason.CharacterLimit ? "length" : "stop";

    /// <summary>A choice's text within the request's character limit.</summary>
    public static string Text(PreparedRequest prepared, GenerationResult result) => TextStream.Limit(result.Text, prepared.MaxCharacters);

    public static CompletionUsage Usage(PreparedRequest prepared, IEnumerable<JobOutcome> outcomes)
    {
        var completion = outcomes.Sum(o => o.Results.Sum(r => r.GeneratedIds.Count));
        return new CompletionUsage(prepared.PromptTokens, completion, prepared.PromptTokens + completion);
    }

    /// <summary>The choice index OpenAI gives candidate c of prompt p.</summary>
    public static int ChoiceIndex(PreparedRequest prepared, int input, int candidate) => input * prepared.Jobs[input].Candidates.Count + candidate;

    /// <summary>What every chunk and answer of one OpenAI call names: its id, creation time and model.</summary>
    public sealed record Call(string Id, long Created, string Model, PreparedRequest Prepared);

    /// <summary>
    /// The part both OpenAI routes share once their request is read: prepare it with the common pipeline, enqueue it,
    /// then either stream it (<paramref name="chunk"/> per piece, <paramref name="usageChunk"/> if asked) or wait for
    /// every outcome and <paramref name="answer"/>. Problems come back as the pipeline's ProblemDetails.
    /// </summary>
    public static async Task<IResult> RunAsync(RequestPipeline pipeline, GenerationRequest generation, string? adapter, string idPrefix,
        bool stream, bool includeUsage, Func<Call, Func<StreamItem, object>> chunk, Func<Call, CompletionUsage, object> usageChunk,
        Func<Call, IReadOnlyList<JobOutcome>, IResult> answer, HttpContext context)
    {
        var (prepared, problem) = pipeline.Prepare(generation, context);
        if (problem is not null)
            return problem;
        using (prepared)
        {
            if (pipeline.Enqueue(prepared!, context) is { } refused)
                return refused;
            var call = new Call($"{idPrefix}-{Guid.NewGuid():N}", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), adapter ?? prepared!.Model.Source, prepared!);
            if (stream)
                return await StreamAsync(prepared!, includeUsage, chunk(call), usage => usageChunk(call, usage), context);
            try
            {
                return answer(call, await prepared!.CompleteAsync());
            }
            catch (JobFailedException failure)
            {
                return RequestProblems.From(failure);
            }
        }
    }

    /// <summary>
    /// Server-sent events as OpenAI streams them: <paramref name="chunk"/> makes the chunk for each text piece (the
    /// last of a choice carries its outcome), then, if asked, a chunk with the usage and no choices, then
    /// <c>data: [DONE]</c>. A failure after the stream began is an <c>error</c> event in OpenAI's error shape.
    /// </summary>
    public static async Task<IResult> StreamAsync(PreparedRequest prepared, bool includeUsage, Func<StreamItem, object> chunk,
        Func<CompletionUsage, object> usageChunk, HttpContext context)
    {
        if (await prepared.WaitForFirstTokenAsync() is { } early)
            return early;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var outcomes = new List<JobOutcome>();
        try
        {
            await foreach (var item in prepared.StreamAsync(context.RequestAborted))
            {
                await Send(context, chunk(item));
                if (item.Outcome is { } outcome && item.Candidate == 0)
                    outcomes.Add(outcome);
            }
            if (includeUsage)
                await Send(context, usageChunk(Usage(prepared, outcomes)));
            await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        }
        catch (JobFailedException failure)
        {
            var status = RequestProblems.From(failure).StatusCode;
            await context.Response.WriteAsync(
                $"event: error\ndata: {JsonSerializer.Serialize(new { error = new { message = failure.Message, type = OpenAiErrors.Type(status), code = status } })}\n\n");
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its jobs end with it.
        }
        return Results.Empty;
    }

    private static Task Send(HttpContext context, object chunk) =>
        context.Response.WriteAsync($"data: {JsonSerializer.Serialize(chunk, chunk.GetType())}\n\n", context.RequestAborted);
}
