using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// Turns what the framework refuses before a handler runs (a body that is not JSON, a value of the wrong type, an
/// unknown field, a body too large) into a ProblemDetails that names the field and the reason, instead of a bare
/// "Bad Request". Route handlers are set to throw such errors (<c>RouteHandlerOptions.ThrowOnBadRequest</c>) so
/// they arrive here.
/// </summary>
public sealed partial class BadRequestHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
            return false;
        ProblemDetails problem;
        if (FindJsonError(bad) is { } json)
        {
            var (field, reason) = Describe(json);
            problem = new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [reason] })
            {
                Title = "Invalid request",
                Detail = field == "$" ? reason : $"{field}: {reason}",
            };
        }
        else
        {
            problem = new ProblemDetails
            {
                // Any other status keeps its own title: a Content-Type missing or unparsable is a 415 titled as the framework
                // titles the 415 it answers itself, and ProblemReasons says what the endpoint reads (this message only echoes the header).
                Title = bad.StatusCode switch
                {
                    StatusCodes.Status400BadRequest => "Bad request",
                    StatusCodes.Status413PayloadTooLarge => "Request too large",
                    _ => null,
                },
                Detail = bad.StatusCode == StatusCodes.Status415UnsupportedMediaType ? null : bad.Message,
            };
        }
        problem.Status = bad.StatusCode;
        context.Response.StatusCode = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem, Exception = exception });
    }

    private static JsonException? FindJsonError(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is JsonException json) return json;
        return null;
    }

    /// <summary>The field (as the client spelt it, e.g. <c>texts[2]</c>) and what is wrong with it.</summary>
    internal static (string Field, string Reason) Describe(JsonException json)
    {
        var message = json.Message;
        if (UnknownMember().Match(message) is { Success: true } unknown)
            return (Field(json.Path, unknown.Groups["name"].Value), "is not a known field.");
        if (Conversion().Match(message) is { Success: true } conversion)
            return (Field(json.Path, null), $"must be {Expected(conversion.Groups["type"].Value)}.");
        // Syntax: cut the position suffix, which repeats the path in the reader's terms.
        var reason = message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd();
        return (Field(json.Path, null), $"the body is not valid JSON: {reason}");
    }

    private static string Field(string? path, string? member)
    {
        var field = string.IsNullOrEmpty(path) ? "$" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;
        if (member is null) return field;
        return field == "$" ? member : field.EndsWith(member, StringComparison.Ordinal) ? field : $"{field}.{member}";
    }

    private static string Expected(string type) => type switch
    {
        // Nullable<T> is written with T assembly-qualified (Nullable`1[[System.Int32, ...]]) or bare (Nullable`1[System.Int32]).
        _ when type.StartsWith("System.Nullable`1[", StringComparison.Ordinal) => Expected(type[18..].TrimStart('[').Split(',', ']')[0]),
        "System.Double" or "System.Single" => "a number",
        "System.Int32" => $"an integer in [{int.MinValue}, {int.MaxValue}]",
        "System.Int64" => $"an integer in [{long.MinValue}, {long.MaxValue}]",
        "System.Boolean" => "true or false",
        "System.String" => "a string",
        _ when type.Contains("List", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal) => "an array",
        _ when type.Contains("Dictionary", StringComparison.Ordinal) => "an object",
        _ => "a value of another kind",
    };

    [GeneratedRegex(@"The JSON property '(?<name>[^']*)' could not be mapped")]
    private static partial Regex UnknownMember();

    [GeneratedRegex(@"could not be converted to (?<type>[^\s.]+(\.[^\s.]+)*(\[\[.*?\]\])?)")]
    private static partial Regex Conversion();
}
