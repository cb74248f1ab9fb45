using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ParaphraseService.Api.Requests;

namespace ParaphraseService.Api.OpenAi;

/// <summary>
/// OpenAI clients read an error from <c>{"error": {"message", "type", "param", "code"}}</c>. Every ProblemDetails
/// answered under <c>/v1</c> carries that member too, so the same body is a ProblemDetails for HTTP tools and an
/// OpenAI error for OpenAI clients.
/// </summary>
public static class OpenAiErrors
{
    public static void AddTo(ProblemDetailsContext context)
    {
        if (!context.HttpContext.Request.Path.StartsWithSegments("/v1")) return;
        var problem = context.ProblemDetails;
        var status = problem.Status ?? context.HttpContext.Response.StatusCode;
        var param = problem is HttpValidationProblemDetails { Errors.Count: > 0 } validation ? validation.Errors.Keys.First() : null;
        var request = context.HttpContext.Request;
        // No endpoint: a path nothing serves, which OpenAI answers in these words (and with no code).
        var unrouted = status == StatusCodes.Status404NotFound && context.HttpContext.GetEndpoint() is null;
        problem.Extensions["error"] = new
        {
            message = unrouted ? $"Invalid URL ({request.Method} {request.Path})" : problem.Detail ?? problem.Title ?? "The request failed.",
            type = Type(status),
            param,
            code = Code(status, param),
        };
    }

    /// <summary>OpenAI's error code: model_not_found for a 404 about the model (not for any 404), rate_limit_exceeded, else none.</summary>
    public static string? Code(int? status, string? param) => status switch
    {
        StatusCodes.Status404NotFound when param == "model" => "model_not_found",
        StatusCodes.Status429TooManyRequests => "rate_limit_exceeded",
        _ => null,
    };

    /// <summary>404 for a model this service does not serve; its <c>param</c> is <c>model</c>, so its code is model_not_found.</summary>
    public static ProblemHttpResult ModelNotFound(string name) => RequestProblems.UnknownModel("model", name);

    /// <summary>OpenAI's error type for a status code.</summary>
    public static string Type(int? status) => status switch
    {
        StatusCodes.Status429TooManyRequests => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };
}
