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

    /// <summary>Usage as OpenAI counts it: every choice's tokens, copies included.</summary>
    public static CompletionUsage Usage(Call call, IEnumerable<JobOutcome> outcomes)
    {
        var completion = outcomes.Sum(o => Enumerable.Range(0, call.N).Sum(j => call.Result(o, j).GeneratedIds.Count));
        return new CompletionUsage(call.Prepared.PromptTokens, completion, call.Prepared.PromptTokens + completion);
    }

    /// <summary>
    /// What every chunk and answer of one OpenAI call names: its id, creation time and model; and its <paramref name="N"/>
    /// choices per prompt. Greedy decoding runs one row per prompt (the pipeline never decodes the same text twice),
    /// but OpenAI still answers n choices: each is a copy of that row.
    /// </summary>
    public sealed record Call(string Id, long Created, string Model, PreparedRequest Prepared, int N)
    {
        /// <summary>OpenAI's index for choice j of prompt p.</summary>
        public int Index(int input, int choice) => input * N + choice;

        /// <summary>The result choice j of a prompt shows.</summary>
        public GenerationResult Result(JobOutcome outcome, int choice) => outcome.Results[outcome.Results.Count == N ? choice : 0];

        /// <summary>The choices (0..n-1 within its prompt) that candidate c's text is shown as.</summary>
        public IEnumerable<int> Choices(int input, int candidate) =>
            Prepared.Jobs[input].Candidates.Count == N ? [candidate] : Enumerable.Range(0, N);
    }

    /// <summary>
    /// The part both OpenAI routes share once their request is read: prepare it with the common pipeline, enqueue it,
    /// then either stream it (<paramref name="chunk"/> per piece and choice, <paramref name="usageChunk"/> if asked) or
    /// wait for every outcome and <paramref name="answer"/>. Problems come back as the pipeline's ProblemDetails.
    /// </summary>
    public static async Task<IResult> RunAsync(RequestPipeline pipeline, GenerationRequest generation, string? adapter, string idPrefix,
        bool stream, bool includeUsage, Func<Call, Func<StreamItem, int, object>> chunk, Func<Call, CompletionUsage, object> usageChunk,
        Func<Call, IReadOnlyList<JobOutcome>, IResult> answer, HttpContext context)
    {
        var (prepared, problem) = pipeline.Prepare(generation, context);
        if (problem is not null)
            return problem;
        using (prepared)
        {
            if (pipeline.Enqueue(prepared!, context) is { } refused)
                return refused;
            var call = new Call($"{idPrefix}-{Guid.NewGuid():N}", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), adapter ?? prepared!.Model.Source, prepared!,
                generation.Candidates);
            if (stream)
                return await StreamAsync(call, includeUsage, chunk(call), usage => usageChunk(call, usage), context);
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
    /// Server-sent events as OpenAI streams them: <paramref name="chunk"/> makes the chunk for each text piece and each
    /// choice (0..n-1 within its prompt) that shows it (the last of a choice carries its outcome), then, if asked, a
    /// chunk with the usage and no choices, then <c>data: [DONE]</c>. A failure after the stream began is an
    /// <c>error</c> event in OpenAI's error shape.
    /// </summary>
    public static async Task<IResult> StreamAsync(Call call, bool includeUsage, Func<StreamItem, int, object> chunk,
        Func<CompletionUsage, object> usageChunk, HttpContext context)
    {
        var prepared = call.Prepared;
        if (await prepared.WaitForFirstTokenAsync() is { } early)
            return early;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var outcomes = new List<JobOutcome>();
        try
        {
            await foreach (var item in prepared.StreamAsync(context.RequestAborted))
            {
                foreach (var choice in call.Choices(item.Input, item.Candidate))
                    await Send(context, chunk(item, choice));
                if (item.Outcome is { } outcome && item.Candidate == 0)
                    outcomes.Add(outcome);
            }
            if (includeUsage)
                await Send(context, usageChunk(Usage(call, outcomes)));
            await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        }
        catch (JobFailedException failure)
        {
            // The error the same failure gets before a stream begins: OpenAI's code is a string or null, never the status.
            var status = RequestProblems.From(failure).StatusCode;
            var error = new { message = failure.Message, type = OpenAiErrors.Type(status), param = failure.Field, code = OpenAiErrors.Code(status, failure.Field) };
            await context.Response.WriteAsync($"event: error\ndata: {JsonSerializer.Serialize(new { error })}\n\n");
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
