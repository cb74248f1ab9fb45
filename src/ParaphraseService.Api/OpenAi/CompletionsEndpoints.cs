using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.OpenAi;

/// <summary>OpenAI-compatible <c>/v1/models</c> and <c>/v1/completions</c>, so OpenAI client libraries work unchanged.</summary>
public static class CompletionsEndpoints
{
    private const int MaxPrompts = 32;
    private const int MaxChoices = 8;

    public static RouteGroupBuilder MapOpenAiCompletions(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").WithMetadata(new RequestSizeLimitAttribute(1 << 20));
        group.MapGet("/models", ListModels).WithSummary("The base model and every adapter, as OpenAI model ids.");
        group.MapPost("/completions", Complete)
            .WithSummary("Text completion: model (base id or adapter name), prompt, max_tokens, temperature, top_p, n, stop, seed, stream.")
            .Produces<CompletionResponse>()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        return group;
    }

    private static Results<Ok<ModelList>, ProblemHttpResult> ListModels(ModelHost host, IAdapterFolders adapters)
    {
        if (host.Model is not { } model)
            return JobProblems.NotReady();
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cards = new List<ModelCard> { new(model.Source, "model", created, "paraphrase-service") };
        cards.AddRange(adapters.Names().Select(name => new ModelCard(name, "model", created, "paraphrase-service:adapter")));
        return TypedResults.Ok(new ModelList("list", cards));
    }

    private static async Task<IResult> Complete(
        CompletionRequest request, ModelHost host, GenerationQueue queue, IOptions<SchedulerOptions> options, HttpContext context)
    {
        if (host.Model is not { } model)
            return JobProblems.NotReady();
        var errors = new Dictionary<string, string[]>();
        var prompts = Strings(request.Prompt, "prompt", MaxPrompts, errors);
        var stops = request.Stop.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null ? [] : Strings(request.Stop, "stop", 4, errors);
        var n = request.N ?? 1;
        if (n is < 1 or > MaxChoices) errors["n"] = [$"n must be 1-{MaxChoices}."];
        if (request.MaxTokens is < 1) errors["max_tokens"] = ["max_tokens must be at least 1."];
        if (request.Temperature is < 0 or > 2) errors["temperature"] = ["temperature must be in [0, 2]."];
        if (request.TopP is <= 0 or > 1) errors["top_p"] = ["top_p must be in (0, 1]."];
        if (stops.Any(string.IsNullOrEmpty)) errors["stop"] = ["stop sequences must not be empty."];
        string? adapter = null;
        if (!string.IsNullOrEmpty(request.Model) && request.Model != model.Source)
            adapter = request.Model;
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);

        var deadline = DateTimeOffset.UtcNow.AddSeconds(options.Value.RequestTimeoutSeconds);
        var jobs = new List<(GenerationJob Job, int PromptTokens)>();
        foreach (var prompt in prompts)
        {
            var ids = model.Tokenizer.Encode(prompt);
            var candidates = Enumerable.Range(0, n).Select(i => new GenerationOptions
            {
                MaxNewTokens = request.MaxTokens ?? 16,
                Greedy = request.Temperature == 0,
                Temperature = request.Temperature is > 0 ? request.Temperature.Value : 1.0,
                TopP = request.TopP ?? 1.0,
                StopSequences = stops,
                Seed = request.Seed is { } seed ? seed + i : null,
            }).ToList();
            var job = new GenerationJob(ids, candidates, adapter, deadline, context.RequestAborted);
            if (!queue.TryEnqueue(job))
                return JobProblems.QueueFull(context);
            jobs.Add((job, ids.Count));
        }

        var id = $"cmpl-{Guid.NewGuid():N}";
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var modelName = request.Model ?? model.Source;
        if (request.Stream)
            return await Stream(jobs, n, stops, id, created, modelName, model.Tokenizer, request.StreamOptions?.IncludeUsage == true, context);

        var choices = new List<CompletionChoice>();
        int promptTokens = 0, completionTokens = 0;
        for (var p = 0; p < jobs.Count; p++)
        {
            JobOutcome outcome;
            try
            {
                outcome = await jobs[p].Job.Completion;
            }
            catch (JobFailedException failure)
            {
                return JobProblems.ToProblem(failure);
            }
            promptTokens += jobs[p].PromptTokens;
            for (var c = 0; c < outcome.Results.Count; c++)
            {
                var result = outcome.Results[c];
                completionTokens += result.GeneratedIds.Count;
                choices.Add(new CompletionChoice(result.Text, p * n + c, null, FinishReason(result)));
            }
        }
        return TypedResults.Ok(new CompletionResponse(id, "text_completion", created, modelName, choices,
            new CompletionUsage(promptTokens, completionTokens, promptTokens + completionTokens)));
    }

    /// <summary>Server-sent events as OpenAI streams them: a chunk per text piece, a final chunk per choice, then [DONE].</summary>
    private static async Task<IResult> Stream(List<(GenerationJob Job, int PromptTokens)> jobs, int n, IReadOnlyList<string> stops,
        string id, long created, string modelName, Model.Tokenization.Gpt2Tokenizer tokenizer, bool includeUsage, HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        async Task Send(CompletionChoice choice) =>
            await context.Response.WriteAsync(
                $"data: {JsonSerializer.Serialize(new CompletionResponse(id, "text_completion", created, modelName, [choice], null))}\n\n",
                context.RequestAborted);

        var completionTokens = 0;
        for (var p = 0; p < jobs.Count; p++)
        {
            var job = jobs[p].Job;
            var streams = Enumerable.Range(0, n).Select(_ => new TextStream(tokenizer, stops)).ToArray();
            try
            {
                await foreach (var token in job.Tokens.ReadAllAsync(context.RequestAborted))
                {
                    var piece = streams[token.Candidate].Add(token.Token);
                    if (piece.Length > 0)
                        await Send(new CompletionChoice(piece, p * n + token.Candidate, null, null));
                }
                var outcome = await job.Completion;
                completionTokens += outcome.Results.Sum(r => r.GeneratedIds.Count);
                for (var c = 0; c < outcome.Results.Count; c++)
                    await Send(new CompletionChoice(streams[c].Finish(outcome.Results[c].Text), p * n + c, null, FinishReason(outcome.Results[c])));
            }
            catch (JobFailedException failure)
            {
                await context.Response.WriteAsync($"event: error\ndata: {JsonSerializer.Serialize(new { error = failure.Message })}\n\n", context.RequestAborted);
                return Results.Empty;
            }
        }
        if (includeUsage)
        {
            var promptTokens = jobs.Sum(j => j.PromptTokens);
            var usage = new CompletionUsage(promptTokens, completionTokens, promptTokens + completionTokens);
            await context.Response.WriteAsync(
                $"data: {JsonSerializer.Serialize(new CompletionResponse(id, "text_completion", created, modelName, [], usage))}\n\n", context.RequestAborted);
        }
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        return Results.Empty;
    }

    private static string FinishReason(GenerationResult result) => result.FinishReason == Model.Generation.FinishReason.Length ? "length" : "stop";

    private static List<string> Strings(JsonElement value, string field, int max, Dictionary<string, string[]> errors)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            var single = value.GetString()!;
            if (field == "prompt" && string.IsNullOrWhiteSpace(single)) errors[field] = ["prompt must not be empty."];
            return [single];
        }
        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() is > 0 and var count && count <= max
            && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
        {
            var list = value.EnumerateArray().Select(e => e.GetString()!).ToList();
            if (field == "prompt" && list.Any(string.IsNullOrWhiteSpace)) errors[field] = ["prompts must not be empty."];
            return list;
        }
        errors[field] = [$"{field} must be a string or an array of 1-{max} strings."];
        return [];
    }
}
