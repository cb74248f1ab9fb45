using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.OpenAi;

/// <summary>OpenAI-compatible <c>/v1/models</c> and <c>/v1/completions</c>, so OpenAI client libraries work unchanged.</summary>
public static class CompletionsEndpoints
{
    /// <summary>max_tokens above this is refused outright (the token budget refuses far less anyway).</summary>
    private const int MaxTokensLimit = 1 << 20;
    private const int DefaultMaxTokens = 16;

    public static RouteGroupBuilder MapOpenAiCompletions(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").WithMetadata(new RequestSizeLimitAttribute(1 << 20));
        group.MapGet("/models", ListModels).WithSummary("The base model and every adapter, as OpenAI model ids.");
        group.MapPost("/completions", Complete)
            .WithSummary("Text completion: model (base id or adapter name), prompt, max_tokens, temperature, top_p, n, stop, seed, stream.")
            .Produces<CompletionResponse>()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);
        return group;
    }

    private static Results<Ok<ModelList>, ProblemHttpResult> ListModels(ModelHost host, AdapterManager adapters)
    {
        if (host.Model is not { } model)
            return RequestProblems.NotReady(host.LoadError);
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cards = new List<ModelCard> { new(model.Source, "model", created, "paraphrase-service") };
        cards.AddRange(adapters.Names().Select(name => new ModelCard(name, "model", created, "paraphrase-service:adapter")));
        return TypedResults.Ok(new ModelList("list", cards));
    }

    private static async Task<IResult> Complete(CompletionRequest request, RequestPipeline pipeline, ModelHost host, HttpContext context)
    {
        var errors = new FieldErrors();
        var prompts = Strings(request.Prompt, "prompt", RequestRules.MaxInputs, required: true, errors);
        foreach (var (prompt, i) in prompts.Select((p, i) => (p, i)))
            if (prompt is not null)
                RequestRules.Input(prompt, request.Prompt.ValueKind == JsonValueKind.Array ? $"prompt[{i}]" : "prompt", errors);
        var stops = Strings(request.Stop, "stop", RequestRules.MaxStopSequences, required: false, errors);
        RequestRules.StopSequences(stops, "stop", errors);
        var n = request.N ?? 1;
        RequestRules.Count(n, "n", RequestRules.MaxCandidates, errors);
        RequestRules.Count(request.MaxTokens ?? DefaultMaxTokens, "max_tokens", MaxTokensLimit, errors);
        RequestRules.Temperature(request.Temperature ?? 1, "temperature", errors);
        RequestRules.TopP(request.TopP ?? 1, "top_p", errors);
        RequestRules.TopK(request.TopK ?? 0, "top_k", errors);
        RequestRules.RepetitionPenalty(request.RepetitionPenalty ?? 1, "repetition_penalty", errors);
        if (request.Model is not null) RequestRules.WellFormed(request.Model, "model", errors);
        if (request.User is not null) RequestRules.WellFormed(request.User, "user", errors);
        if (request.StreamOptions is not null && !request.Stream)
            errors.Add("stream_options", "is only allowed with stream: true.");
        Unsupported(request, n, errors);
        if (errors.Any)
            return RequestProblems.Invalid(errors);

        // The base model answers to its own id (or no model at all); any other name is an adapter's.
        var adapter = string.IsNullOrEmpty(request.Model) || request.Model == host.Model?.Source ? null : request.Model;
        var (prepared, problem) = pipeline.Prepare(new GenerationRequest
        {
            Inputs = prompts!,
            Adapter = adapter,
            Candidates = n,
            MaxNewTokens = request.MaxTokens ?? DefaultMaxTokens,
            Temperature = request.Temperature ?? 1,
            TopP = request.TopP ?? 1,
            TopK = request.TopK ?? 0,
            RepetitionPenalty = request.RepetitionPenalty ?? 1,
            Seed = request.Seed,
            Stop = stops!,
            Stream = request.Stream,
            Fields = new RequestFields("prompt", request.Prompt.ValueKind == JsonValueKind.Array, "model", "n", "max_tokens"),
        }, context);
        if (problem is not null)
            return problem;
        using (prepared)
        {
            if (pipeline.Enqueue(prepared!, context) is { } refused)
                return refused;
            var id = $"cmpl-{Guid.NewGuid():N}";
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var modelName = adapter ?? prepared!.Model.Source;
            if (request.Stream)
                return await Stream(prepared!, id, created, modelName, request.StreamOptions?.IncludeUsage == true, context);

            IReadOnlyList<JobOutcome> outcomes;
            try
            {
                outcomes = await prepared!.CompleteAsync();
            }
            catch (JobFailedException failure)
            {
                return RequestProblems.From(failure);
            }
            var choices = outcomes.SelectMany((outcome, p) => outcome.Results.Select((result, c) =>
                new CompletionChoice(result.Text, p * outcome.Results.Count + c, null, FinishReason(result)))).ToList();
            return TypedResults.Ok(new CompletionResponse(id, "text_completion", created, modelName, choices, Usage(prepared, outcomes)));
        }
    }

    /// <summary>Server-sent events as OpenAI streams them: a chunk per text piece, a final chunk per choice, then [DONE].</summary>
    private static async Task<IResult> Stream(PreparedRequest prepared, string id, long created, string modelName, bool includeUsage, HttpContext context)
    {
        if (await prepared.WaitForFirstTokenAsync() is { } early)
            return early;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        async Task Send(IReadOnlyList<CompletionChoice> choices, CompletionUsage? usage) =>
            await context.Response.WriteAsync(
                $"data: {JsonSerializer.Serialize(new CompletionResponse(id, "text_completion", created, modelName, choices, usage))}\n\n",
                context.RequestAborted);

        var outcomes = new List<JobOutcome>();
        try
        {
            await foreach (var item in prepared.StreamAsync(context.RequestAborted))
            {
                var index = item.Input * prepared.Jobs[item.Input].Candidates.Count + item.Candidate;
                if (item.Outcome is { } outcome)
                {
                    await Send([new CompletionChoice(item.Text, index, null, FinishReason(outcome.Results[item.Candidate]))], null);
                    if (item.Candidate == 0) outcomes.Add(outcome);
                }
                else
                {
                    await Send([new CompletionChoice(item.Text, index, null, null)], null);
                }
            }
            if (includeUsage)
                await Send([], Usage(prepared, outcomes));
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

    private static CompletionUsage Usage(PreparedRequest prepared, IReadOnlyList<JobOutcome> outcomes)
    {
        var completion = outcomes.Sum(o => o.Results.Sum(r => r.GeneratedIds.Count));
        return new CompletionUsage(prepared.PromptTokens, completion, prepared.PromptTokens + completion);
    }

    private static string FinishReason(GenerationResult result) => result.FinishReason == Model.Generation.FinishReason.Length ? "length" : "stop";

    /// <summary>OpenAI's fields this service does not implement, refused unless they ask for nothing.</summary>
    private static void Unsupported(CompletionRequest request, int n, FieldErrors errors)
    {
        if (!string.IsNullOrEmpty(request.Suffix)) errors.Add("suffix", "is not supported.");
        if (request.Echo == true) errors.Add("echo", "is not supported (only false).");
        if (request.Logprobs is not null) errors.Add("logprobs", "is not supported.");
        if (request.BestOf is { } bestOf && bestOf != n) errors.Add("best_of", "is not supported (only equal to n).");
        if (request.PresencePenalty is { } presence && presence != 0) errors.Add("presence_penalty", "is not supported (only 0); repetition_penalty is.");
        if (request.FrequencyPenalty is { } frequency && frequency != 0) errors.Add("frequency_penalty", "is not supported (only 0); repetition_penalty is.");
        if (request.LogitBias is { Count: > 0 }) errors.Add("logit_bias", "is not supported (only empty).");
    }

    /// <summary>A string or an array of strings (null elements kept, for the caller to name).</summary>
    private static List<string?> Strings(JsonElement value, string field, int max, bool required, FieldErrors errors)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null when !required:
                return [];
            case JsonValueKind.String:
                return [Text(value, field, errors)];
            case JsonValueKind.Array when value.GetArrayLength() is > 0 and var count && count <= max:
                if (value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                    return value.EnumerateArray().Select((e, i) => Text(e, $"{field}[{i}]", errors)).ToList();
                if (field == "prompt" && value.EnumerateArray().Any(e => e.ValueKind is JsonValueKind.Number or JsonValueKind.Array))
                {
                    errors.Add(field, "token-id prompts are not supported; send text.");
                    return [];
                }
                break;
        }
        errors.Add(field, $"must be a string or an array of 1-{max} strings.");
        return [];
    }

    /// <summary>A JSON string's text; null (with an error) when it escapes a lone surrogate, which is not text.</summary>
    private static string? Text(JsonElement value, string field, FieldErrors errors)
    {
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            errors.Add(field, "holds an unpaired UTF-16 surrogate (e.g. \\ud800 alone), which is not text.");
            return null;
        }
    }
}
