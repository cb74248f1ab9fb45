using Microsoft.AspNetCore.Http;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// A reason in words for the ProblemDetails the framework writes itself (no route, a method not allowed, a body that is
/// not JSON), which otherwise carry only their status's title.
/// </summary>
public static class ProblemReasons
{
    public static void Fill(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        // ASP.NET Core links the statuses of RFC 9110 to their definitions; these two are defined elsewhere.
        problem.Type ??= (problem.Status ?? context.HttpContext.Response.StatusCode) switch
        {
            StatusCodes.Status413PayloadTooLarge => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
            StatusCodes.Status429TooManyRequests => "https://tools.ietf.org/html/rfc6585#section-4",
            _ => null,
        };
        if (!string.IsNullOrEmpty(problem.Detail)) return;
        // A validation problem says what its errors say, not only that the request was malformed.
        if (problem is HttpValidationProblemDetails { Errors.Count: > 0 } validation)
        {
            var errors = validation.Errors.SelectMany(e => e.Value.Select(message => $"{e.Key}: {message}")).ToList();
            problem.Detail = errors.Count == 1 ? errors[0] : $"{errors.Count} problems: {string.Join("; ", errors)}";
            return;
        }
        var request = context.HttpContext.Request;
        var sent = Sent(request);
        problem.Detail = (problem.Status ?? context.HttpContext.Response.StatusCode) switch
        {
            StatusCodes.Status400BadRequest => "The request is malformed.",
            StatusCodes.Status404NotFound => $"Nothing is served at {request.Method} {request.Path}; /swagger lists the API.",
            StatusCodes.Status405MethodNotAllowed => $"{request.Method} is not allowed at {request.Path}.",
            StatusCodes.Status413PayloadTooLarge => "The request body is larger than this endpoint accepts.",
            StatusCodes.Status415UnsupportedMediaType => request.Path.StartsWithSegments("/batches")
                ? $"This endpoint reads a JSONL file: send it with Content-Type: application/jsonl (or application/x-ndjson, text/plain), or as the field 'file' of a multipart/form-data form ({sent})."
                : $"This endpoint reads JSON: send the body with Content-Type: application/json ({sent}).",
            >= 500 => "The server failed; the trace id identifies the failure in the service's log.",
            var status => $"The request was refused ({status}).",
        };
    }

    /// <summary>What a refused body was sent as, for a 415's detail: "got 'text/plain'", or that no Content-Type was sent.</summary>
    public static string Sent(HttpRequest request) =>
        string.IsNullOrEmpty(request.ContentType) ? "no Content-Type was sent" : $"got '{request.ContentType}'";
}
