using Microsoft.AspNetCore.Http.HttpResults;

namespace ParaphraseService.Api.Scheduling;

/// <summary>How the HTTP layer reports a job the scheduler did not finish.</summary>
public static class JobProblems
{
    public static ProblemHttpResult ToProblem(JobFailedException failure) => failure.Failure switch
    {
        JobFailure.UnknownAdapter => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status404NotFound, title: "Unknown adapter"),
        JobFailure.InvalidRequest => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status400BadRequest, title: "Invalid request"),
        JobFailure.Timeout => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status504GatewayTimeout, title: "Timed out"),
        JobFailure.Cancelled => TypedResults.Problem(failure.Message, statusCode: 499, title: "Client closed request"),
        _ => TypedResults.Problem(failure.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable"),
    };

    public static ProblemHttpResult QueueFull(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return TypedResults.Problem("Too many requests are waiting; retry shortly.", statusCode: StatusCodes.Status429TooManyRequests, title: "Queue full");
    }

    public static ProblemHttpResult NotReady() =>
        TypedResults.Problem("The model is not loaded yet.", statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");
}
