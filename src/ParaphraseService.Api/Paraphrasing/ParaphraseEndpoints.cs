using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Mvc;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Paraphrasing;

public static partial class ParaphraseEndpoints
{
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
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);
        return group;
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    private static async Task<IResult> Paraphrase(ParaphraseRequest request, RequestPipeline pipeline, CandidatePostProcessor postProcessor, HttpContext context)
    {
        var errors = Validate(request, out var texts);
        if (errors.Any)
            return RequestProblems.Invalid(errors);
        var (prepared, problem) = pipeline.Prepare(Generation(request, texts), context);
        if (problem is not null)
            return problem;
        using (prepared)
        {
            if (pipeline.Enqueue(prepared!, context) is { } refused)
                return refused;
            if (request.Stream)
                return await Stream(prepared!, texts, Constraints(request), postProcessor, context);
            IReadOnlyList<JobOutcome> outcomes;
            try
            {
                outcomes = await prepared!.CompleteAsync();
            }
            catch (JobFailedException failure)
            {
                return RequestProblems.From(failure);
            }
            return TypedResults.Ok(Response(prepared, texts, outcomes, Constraints(request), postProcessor));
        }
    }

    /// <summary>What a valid request (<see cref="Validate"/>) asks the pipeline for; batch lines are built the same way.</summary>
    internal static GenerationRequest Generation(ParaphraseRequest request, IReadOnlyList<string> texts) => new()
    {
        Inputs = texts,
        Templated = true,
        Adapter = request.Adapter,
        UsesDefaultAdapter = request.UseDefaultAdapter,
        Candidates = request.Candidates,
        MaxNewTokens = request.MaxNewTokens,
        Temperature = request.Temperature,
        TopP = request.TopP,
        TopK = request.TopK,
        RepetitionPenalty = request.RepetitionPenalty,
        Seed = request.Seed,
        Stream = request.Stream,
        MaxCharacters = request.MaxChars,
        Avoid = Terms(request.Avoid),
        Speculation = request.Speculation,
        Fields = new RequestFields(request.Texts is null ? "text" : "texts", request.Texts is not null, "adapter", "candidates", "maxNewTokens"),
    };

    internal static ParaphraseResponse Response(PreparedRequest prepared, IReadOnlyList<string> texts, IReadOnlyList<JobOutcome> outcomes,
        CandidateConstraints constraints, CandidatePostProcessor postProcessor)
    {
        var results = texts.Select((text, t) =>
        {
            var processed = postProcessor.Process(text, outcomes[t].Results.Select(r => r.Text).ToList(), prepared.Template!, constraints);
            return new ParaphraseResult(text, processed.Candidates, processed.Generated, processed.Dropped, processed.Removed, Note(processed));
        }).ToList();
        return new ParaphraseResponse(prepared.Model.Source, prepared.Adapter?.Name, prepared.Model.IsDemo, results,
            new ParaphraseUsage(prepared.PromptTokens, outcomes.Sum(o => o.Results.Sum(r => r.GeneratedIds.Count))),
            new ParaphraseTimings(outcomes.Max(o => o.Queued.TotalMilliseconds), outcomes.Max(o => o.Generating.TotalMilliseconds)));
    }

    internal static CandidateConstraints Constraints(ParaphraseRequest request) =>
        new(request.MaxChars, Terms(request.Keep), Terms(request.Avoid), (float?)request.MinSimilarity);

    private static IReadOnlyList<string> Terms(IReadOnlyList<string?>? terms) => terms?.Select(t => t!.Trim()).ToList() ?? [];

    /// <summary>Why no candidate is left, in words; null when some are.</summary>
    private static string? Note(ProcessedCandidates p)
    {
        if (p.Candidates.Count > 0) return null;
        var reasons = new[]
        {
            (p.Dropped.Empty, "empty"), (p.Dropped.Copies, "copies of the input"), (p.Dropped.Duplicates, "duplicates"),
            (p.Removed.MaxChars, "longer than maxChars"), (p.Removed.Avoid, "holding an avoided term"),
            (p.Removed.Keep, "missing a kept term"), (p.Removed.MinSimilarity, "below minSimilarity"),
        }.Where(r => r.Item1 > 0).Select(r => $"{r.Item1} {r.Item2}");
        return $"No candidate survived: of {p.Generated} generated, {string.Join(", ", reasons)}.";
    }

    /// <summary>Server-Sent Events: a <c>token</c> event per text piece, then one <c>result</c> event (or an <c>error</c> event).</summary>
    private static async Task<IResult> Stream(PreparedRequest prepared, IReadOnlyList<string> texts, CandidateConstraints constraints,
        CandidatePostProcessor postProcessor, HttpContext context)
    {
        if (await prepared.WaitForFirstTokenAsync() is { } early)
            return early;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var outcomes = new JobOutcome?[texts.Count];
        try
        {
            await foreach (var item in prepared.StreamAsync(context.RequestAborted))
            {
                if (item.Text.Length > 0)
                    await Send(context, "token", new ParaphraseToken(item.Input, item.Candidate, item.Text));
                if (item.Outcome is not null)
                    outcomes[item.Input] = item.Outcome;
            }
            await Send(context, "result", Response(prepared, texts, outcomes.Select(o => o!).ToList(), constraints, postProcessor));
        }
        catch (JobFailedException failure)
        {
            await Send(context, "error", new { error = failure.Message, status = RequestProblems.From(failure).StatusCode });
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its jobs end with it.
        }
        return Results.Empty;
    }

    private static Task Send<T>(HttpContext context, string name, T data) =>
        context.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data, s_json)}\n\n", context.RequestAborted);

    /// <summary>Every problem with the request's own fields; the texts to rewrite (whitespace collapsed: one line each).</summary>
    internal static FieldErrors Validate(ParaphraseRequest request, out List<string> texts)
    {
        var errors = new FieldErrors();
        texts = [];
        if (request.Text is not null && request.Texts is not null)
            errors.Add("text", "give either text or texts, not both.");
        else if (request.Text is null && request.Texts is null)
            errors.Add("text", "text (or texts) is required.");
        else if (request.Texts is { Count: 0 or > RequestRules.MaxInputs })
            errors.Add("texts", $"must hold 1-{RequestRules.MaxInputs} texts (got {request.Texts.Count}).");
        else if (request.Texts is null)
            RequestRules.Input(request.Text, "text", errors);
        else
            for (var i = 0; i < request.Texts.Count; i++)
                RequestRules.Input(request.Texts[i], $"texts[{i}]", errors);
        RequestRules.Count(request.Candidates, "candidates", RequestRules.MaxCandidates, errors);
        RequestRules.Count(request.MaxNewTokens, "maxNewTokens", MaxNewTokensLimit, errors);
        RequestRules.Temperature(request.Temperature, "temperature", errors);
        RequestRules.TopP(request.TopP, "topP", errors);
        RequestRules.TopK(request.TopK, "topK", errors);
        RequestRules.RepetitionPenalty(request.RepetitionPenalty, "repetitionPenalty", errors);
        RequestRules.MaxCharacters(request.MaxChars, "maxChars", errors);
        RequestRules.Terms(request.Keep, "keep", errors);
        RequestRules.Terms(request.Avoid, "avoid", errors);
        if (request.MinSimilarity is { } min && !(min >= -1 && min <= 1))
            errors.Add("minSimilarity", "must be in [-1, 1] (cosine similarity).");
        if (!errors.Any)
            texts = (request.Texts ?? [request.Text]).Select(t => Whitespace().Replace(t!, " ").Trim()).ToList();
        return errors;
    }
}
