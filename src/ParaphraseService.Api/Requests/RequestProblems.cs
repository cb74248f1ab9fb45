using Microsoft.AspNetCore.Http.HttpResults;
using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Requests;

/// <summary>Every answer of the request pipeline that is not a result, as ProblemDetails (a traceId is added to each).</summary>
public static class RequestProblems
{
    public static ProblemHttpResult Invalid(string field, string message)
    {
        var errors = new FieldErrors();
        errors.Add(field, message);
        return Invalid(errors);
    }

    /// <summary>400 with every problem by field; the detail repeats them in one line for clients that read only that.</summary>
    public static ProblemHttpResult Invalid(FieldErrors errors)
    {
        var byField = errors.ToDictionary();
        return TypedResults.Problem(new HttpValidationProblemDetails(byField)
        {
            Status = StatusCodes.Status400BadRequest,
            Title = "Invalid request",
            Detail = string.Join(" ", byField.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}"))),
        });
    }

    public static ProblemHttpResult UnknownAdapter(string field, string name, string? detail = null) => TypedResults.Problem(new HttpValidationProblemDetails(
        new Dictionary<string, string[]> { [field] = [$"there is no adapter named {RequestRules.Quote(name)}."] })
    {
        Status = StatusCodes.Status404NotFound,
        Title = "Unknown adapter",
        Detail = detail ?? $"There is no adapter named {RequestRules.Quote(name)}. GET /adapters lists them.",
    });

    /// <summary>404 for an OpenAI <c>model</c> this service does not serve (OpenAI's model_not_found).</summary>
    public static ProblemHttpResult UnknownModel(string field, string name) => TypedResults.Problem(new HttpValidationProblemDetails(
        new Dictionary<string, string[]> { [field] = [$"there is no model named {RequestRules.Quote(name)}."] })
    {
        Status = StatusCodes.Status404NotFound,
        Title = "Unknown model",
        Detail = $"The model {RequestRules.Quote(name)} does not exist; GET /v1/models lists the base model and every adapter.",
    });

    public static ProblemHttpResult UnusableAdapter(string name, string problem) => TypedResults.Problem(
        $"The adapter '{name}' is stored but cannot be served: {problem}", statusCode: StatusCodes.Status409Conflict, title: "Adapter unusable");

    public static ProblemHttpResult NotReady(string? loadError) => TypedResults.Problem(
        loadError is null ? "The model is still loading; GET /health/ready answers 200 once it is ready." : $"The model could not be loaded: {loadError}",
        statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");

    public static ProblemHttpResult ShuttingDown() => TypedResults.Problem(
        "The service is shutting down.", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Shutting down");

    public static ProblemHttpResult QueueFull(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return TypedResults.Problem("Too many requests are waiting; retry shortly.", statusCode: StatusCodes.Status429TooManyRequests, title: "Queue full");
    }

    /// <summary>How a job that did not complete is answered.</summary>
    public static ProblemHttpResult From(JobFailedException failure) => failure.Failure switch
    {
        // A field at fault is named as a validation error names it (and so is OpenAI's param).
        JobFailure.InvalidRequest when failure.Field is { } field => TypedResults.Problem(new HttpValidationProblemDetails(
            new Dictionary<string, string[]> { [field] = [failure.Message] })
        {
            Status = StatusCodes.Status400BadRequest, Title = "Invalid request", Detail = failure.Message,
        }),
        JobFailure.InvalidRequest => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status400BadRequest, title: "Invalid request"),
        JobFailure.Timeout => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status504GatewayTimeout, title: "Timed out"),
        JobFailure.Cancelled => TypedResults.Problem(failure.Message, statusCode: 499, title: "Client closed request"),
        JobFailure.AdapterFailed => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status422UnprocessableEntity, title: "Adapter unusable"),
        JobFailure.Internal => TypedResults.Problem(failure.Message + " The trace id identifies it in the service's log.",
            statusCode: StatusCodes.Status500InternalServerError, title: "Generation failed"),
        _ => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable"),
    };
}
