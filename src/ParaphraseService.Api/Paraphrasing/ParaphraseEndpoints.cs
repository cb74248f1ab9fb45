using ParaphraseService.Training.Prompts;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Paraphrasing;

public static partial class ParaphraseEndpoints
{
    private const int MaxTexts = 32;
    private const int MaxCandidates = 8;
    private const int MaxNewTokensLimit = 256;
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static RouteGroupBuilder MapParaphrase(this IEndpointRouteBuilder app)
    {
        // Texts are sentences or paragraphs: a megabyte is far beyond what fits the model's context.
        var group = app.MapGroup("/paraphrase").WithTags("Paraphrase").WithMetadata(new RequestSizeLimitAttribute(1 << 20));
        group.MapPost("/", Paraphrase)
            .WithSummary("Rewrite text while keeping its meaning: candidates sampled per text, copies and duplicates dropped, scored and sorted.")
            .Accepts<ParaphraseRequest>("application/json")
            .Produces<ParaphraseResponse>()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return group;
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    private static async Task<IResult> Paraphrase(
        ParaphraseRequest request, ModelHost host, GenerationQueue queue, IAdapterFolders adapters, CandidatePostProcessor postProcessor,
        IOptions<SchedulerOptions> options, HttpContext context)
    {
        if (host.Model is not { } model)
            return JobProblems.NotReady();
        var errors = Validate(request, out var texts);
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);
        if (request.Adapter is { } name && !adapters.Names().Contains(name, StringComparer.Ordinal))
            return TypedResults.Problem($"No adapter named '{name}'. GET /adapters lists them.", statusCode: StatusCodes.Status404NotFound, title: "Unknown adapter");

        PromptTemplate template;
        try
        {
            template = PromptTemplate.ForAdapter(request.Adapter is null ? null : adapters.PromptTemplate(request.Adapter));
        }
        catch (ArgumentException e)
        {
            return TypedResults.Problem($"Adapter '{request.Adapter}' has an unusable prompt template: {e.Message}", statusCode: StatusCodes.Status409Conflict, title: "Adapter misconfigured");
        }

        var deadline = DateTimeOffset.UtcNow.AddSeconds(options.Value.RequestTimeoutSeconds);
        var jobs = new List<(GenerationJob Job, int PromptTokens)>();
        for (var t = 0; t < texts.Count; t++)
        {
            var ids = model.Tokenizer.Encode(template.Render(texts[t]));
            if (ids.Count + request.MaxNewTokens > options.Value.MaxSequenceTokens)
                return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                {
                    [request.Texts is null ? "text" : $"texts[{t}]"] =
                        [$"The text's prompt is {ids.Count} tokens; with maxNewTokens {request.MaxNewTokens} it exceeds the {options.Value.MaxSequenceTokens} tokens a sequence may hold."],
                });
            var candidates = Enumerable.Range(0, request.Temperature == 0 ? 1 : request.Candidates).Select(i => new GenerationOptions
            {
                MaxNewTokens = request.MaxNewTokens,
                Greedy = request.Temperature == 0,
                Temperature = request.Temperature > 0 ? request.Temperature : 1,
                TopP = request.TopP,
                TopK = request.TopK,
                RepetitionPenalty = request.RepetitionPenalty,
                StopSequences = [template.EndMarker],
                Seed = request.Seed is { } seed ? seed + i : null,
            }).ToList();
            jobs.Add((new GenerationJob(ids, candidates, request.Adapter, deadline, context.RequestAborted), ids.Count));
        }
        foreach (var (job, _) in jobs)
            if (!queue.TryEnqueue(job))
                return JobProblems.QueueFull(context);

        if (request.Stream)
        {
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
        }
        var outcomes = new List<JobOutcome>();
        try
        {
            for (var t = 0; t < jobs.Count; t++)
            {
                if (request.Stream)
                    await StreamTokens(jobs[t].Job, t, model.Tokenizer, template, context);
                outcomes.Add(await jobs[t].Job.Completion);
            }
        }
        catch (JobFailedException failure)
        {
            if (!request.Stream)
                return JobProblems.ToProblem(failure);
            await context.Response.WriteAsync($"event: error\ndata: {JsonSerializer.Serialize(new { error = failure.Message }, s_json)}\n\n");
            return Results.Empty;
        }

        var results = texts.Select((text, t) =>
        {
            var processed = postProcessor.Process(text, outcomes[t].Results.Select(r => r.Text).ToList(), template);
            return new ParaphraseResult(text, processed.Candidates, processed.Dropped);
        }).ToList();
        var response = new ParaphraseResponse(model.Source, request.Adapter, model.IsDemo, results,
            new ParaphraseUsage(jobs.Sum(j => j.PromptTokens), outcomes.Sum(o => o.Results.Sum(r => r.GeneratedIds.Count))),
            new ParaphraseTimings(outcomes.Max(o => o.Queued.TotalMilliseconds), outcomes.Max(o => o.Generating.TotalMilliseconds)));
        if (!request.Stream)
            return TypedResults.Ok(response);
        await context.Response.WriteAsync($"event: result\ndata: {JsonSerializer.Serialize(response, s_json)}\n\n");
        return Results.Empty;
    }

    private static async Task StreamTokens(GenerationJob job, int input, Model.Tokenization.Gpt2Tokenizer tokenizer, PromptTemplate template, HttpContext context)
    {
        var streams = job.Candidates.Select(_ => new TextStream(tokenizer, [template.EndMarker])).ToArray();
        await foreach (var token in job.Tokens.ReadAllAsync(context.RequestAborted))
        {
            var piece = streams[token.Candidate].Add(token.Token);
            if (piece.Length > 0)
                await context.Response.WriteAsync(
                    $"event: token\ndata: {JsonSerializer.Serialize(new ParaphraseToken(input, token.Candidate, piece), s_json)}\n\n", context.RequestAborted);
        }
    }

    /// <summary>Every problem with the request, by field; the texts to rewrite (whitespace collapsed: one line each).</summary>
    private static Dictionary<string, string[]> Validate(ParaphraseRequest request, out List<string> texts)
    {
        var errors = new Dictionary<string, string[]>();
        texts = [];
        if (request.Text is not null && request.Texts is not null)
            errors["text"] = ["Give either text or texts, not both."];
        else if (request.Text is null && request.Texts is null)
            errors["text"] = ["text (or texts) is required."];
        else if (request.Texts is { Count: 0 or > MaxTexts })
            errors["texts"] = [$"texts must hold 1-{MaxTexts} texts."];
        else
        {
            var given = request.Texts ?? [request.Text!];
            for (var i = 0; i < given.Count; i++)
            {
                if (string.IsNullOrWhiteSpace(given[i]))
                    errors[request.Texts is null ? "text" : $"texts[{i}]"] = ["The text is empty."];
                else
                    texts.Add(Whitespace().Replace(given[i], " ").Trim());
            }
        }
        if (request.Candidates is < 1 or > MaxCandidates) errors["candidates"] = [$"candidates must be 1-{MaxCandidates}."];
        if (request.MaxNewTokens is < 1 or > MaxNewTokensLimit) errors["maxNewTokens"] = [$"maxNewTokens must be 1-{MaxNewTokensLimit}."];
        if (request.Temperature is < 0 or > 2 || double.IsNaN(request.Temperature)) errors["temperature"] = ["temperature must be in [0, 2]."];
        if (request.TopP is <= 0 or > 1 || double.IsNaN(request.TopP)) errors["topP"] = ["topP must be in (0, 1]."];
        if (request.TopK < 0) errors["topK"] = ["topK must be 0 (off) or positive."];
        if (request.RepetitionPenalty is < 1 or > 2 || double.IsNaN(request.RepetitionPenalty)) errors["repetitionPenalty"] = ["repetitionPenalty must be in [1, 2]."];
        return errors;
    }
}
