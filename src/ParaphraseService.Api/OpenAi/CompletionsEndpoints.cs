using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Loading;
using static ParaphraseService.Api.OpenAi.OpenAiResponses;

namespace ParaphraseService.Api.OpenAi;

/// <summary>OpenAI-compatible <c>/v1/models</c> and <c>/v1/completions</c>, so OpenAI client libraries work unchanged.</summary>
public static class CompletionsEndpoints
{
    private const int DefaultMaxTokens = 16;

    public static RouteGroupBuilder MapOpenAiCompletions(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").WithMetadata(new RequestSizeLimitAttribute(1 << 20));
        group.MapGet("/models", ListModels).WithSummary("The base model and every adapter, as OpenAI model ids.");
        // A catch-all: a hub model's id holds a slash (EleutherAI/gpt-j-6b), which clients send as it is.
        group.MapGet("/models/{**id}", RetrieveModel).WithSummary("One model of GET /v1/models, by its id.")
            .ProducesProblem(StatusCodes.Status404NotFound);
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

    private static Results<Ok<ModelList>, ProblemHttpResult> ListModels(ModelHost host, AdapterManager adapters) =>
        host.Model is { } model ? TypedResults.Ok(new ModelList("list", Cards(model, adapters))) : RequestProblems.NotReady(host.LoadError);

    private static Results<Ok<ModelCard>, ProblemHttpResult> RetrieveModel(string? id, ModelHost host, AdapterManager adapters)
    {
        if (host.Model is not { } model)
            return RequestProblems.NotReady(host.LoadError);
        // Kestrel leaves an escaped slash (%2F) escaped; a client that escapes the id means the same model.
        var name = Uri.UnescapeDataString(id ?? "");
        return Cards(model, adapters).FirstOrDefault(card => card.Id == name) is { } found ? TypedResults.Ok(found) : OpenAiErrors.ModelNotFound(name);
    }

    /// <summary>What GET /v1/models lists: the base model, then every adapter that can be served.</summary>
    private static List<ModelCard> Cards(LoadedModel model, AdapterManager adapters)
    {
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cards = new List<ModelCard> { new(model.Source, "model", created, "paraphrase-service") };
        cards.AddRange(adapters.Names().Select(name => new ModelCard(name, "model", created, "paraphrase-service:adapter")));
        return cards;
    }

    private static async Task<IResult> Complete(CompletionRequest request, RequestPipeline pipeline, ModelHost host, HttpContext context)
    {
        var errors = new FieldErrors();
        var prompts = OpenAiStrings.Read(request.Prompt, "prompt", RequestRules.MaxInputs, required: true, errors);
        var list = request.Prompt.ValueKind == JsonValueKind.Array;
        for (var i = 0; i < prompts.Count; i++)
            if (prompts[i] is { } prompt)
                RequestRules.Input(prompt, list ? $"prompt[{i}]" : "prompt", errors);
        var maxTokens = request.MaxTokens ?? DefaultMaxTokens;
        var stops = request.Validate(maxTokens, "max_tokens", errors);
        if (!string.IsNullOrEmpty(request.Suffix)) errors.Add("suffix", "is not supported.");
        if (request.Echo == true) errors.Add("echo", "is not supported (only false).");
        if (request.Logprobs is not null) errors.Add("logprobs", "is not supported.");
        if (request.BestOf is { } bestOf && bestOf != request.Choices) errors.Add("best_of", "is not supported (only equal to n).");
        if (errors.Any)
            return RequestProblems.Invalid(errors);

        var adapter = request.AdapterName(host.Model?.Source);
        return await RunAsync(pipeline,
            request.ToGeneration(prompts!, templated: false, adapter, maxTokens, stops, new RequestFields("prompt", list, "model", "n", "max_tokens", AdapterIsModel: true)),
            adapter, "cmpl", request.Streams, request.IncludeUsage,
            call => (item, choice) => new CompletionResponse(call.Id, "text_completion", call.Created, call.Model,
                [new CompletionChoice(item.Text, call.Index(item.Input, choice), null,
                    item.Outcome is { } o ? FinishReason(o.Results[item.Candidate]) : null)], null),
            (call, usage) => new CompletionResponse(call.Id, "text_completion", call.Created, call.Model, [], usage),
            (call, outcomes) => TypedResults.Ok(new CompletionResponse(call.Id, "text_completion", call.Created, call.Model,
                outcomes.SelectMany((outcome, p) => Enumerable.Range(0, call.N).Select(j => call.Result(outcome, j)).Select((result, j) =>
                    new CompletionChoice(Text(call.Prepared, result), call.Index(p, j), null, FinishReason(result)))).ToList(),
                Usage(call, outcomes))),
            context);
    }
}
