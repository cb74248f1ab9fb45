using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// Turns what the framework refuses before a handler runs (a body that is not JSON, a value of the wrong type, an
/// unknown field, a body too large) into a ProblemDetails that names the field and the reason, instead of a bare
/// "Bad Request". Route handlers are set to throw such errors (<c>RouteHandlerOptions.ThrowOnBadRequest</c>) so
/// they arrive here.
/// </summary>
public sealed partial class BadRequestHandler(IProblemDetailsService problems, IOptions<HttpJsonOptions> json) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
            return false;
        ProblemDetails problem;
        if (FindJsonError(bad) is { } error)
        {
            // The exception handler clears the request's endpoint before it runs; its feature keeps it.
            var endpoint = context.Features.Get<IExceptionHandlerFeature>()?.Endpoint;
            var body = endpoint?.Metadata.GetOrderedMetadata<IAcceptsMetadata>().LastOrDefault(a => a.RequestType is not null)?.RequestType;
            var (field, reason) = Describe(error, body, json.Value.SerializerOptions);
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
    /// <param name="body">The type the body was read as; with <paramref name="options"/>, it says what each field must be.</param>
    internal static (string Field, string Reason) Describe(JsonException json, Type? body, JsonSerializerOptions options)
    {
        var message = json.Message;
        if (UnknownMember().Match(message) is { Success: true } unknown)
            return (Field(json.Path, unknown.Groups["name"].Value), "is not a known field.");
        if (Conversion().Match(message) is { Success: true } conversion)
        {
            // The type the serializer names is the field's own, except for a constructor parameter (a positional record's
            // field), where it names the record: the field's type is found by its path instead.
            var expected = (body is null ? null : TypeAt(body, json.Path, options)) ?? Type.GetType(conversion.Groups["type"].Value);
            return (Field(json.Path, null), $"must be {(expected is null ? "a value of another kind" : Kind(expected, options).One)}.");
        }
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

    /// <summary>The type of the value at <paramref name="path"/> (<c>$.messages[0].role</c>) in <paramref name="body"/>; null if it has none.</summary>
    private static Type? TypeAt(Type body, string? path, JsonSerializerOptions options)
    {
        var names = options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        var type = body;
        foreach (Match step in PathStep().Matches(path ?? ""))
        {
            var info = options.GetTypeInfo(Nullable.GetUnderlyingType(type) ?? type);
            var next = info.Kind switch
            {
                // An array's items and a dictionary's values are all of one type.
                JsonTypeInfoKind.Enumerable or JsonTypeInfoKind.Dictionary => info.ElementType,
                JsonTypeInfoKind.Object => info.Properties.FirstOrDefault(p => string.Equals(p.Name, step.Groups["name"].Value, names))?.PropertyType,
                _ => null,
            };
            if (next is null) return null;
            type = next;
        }
        return type;
    }

    /// <summary>A value of <paramref name="type"/> in JSON's words: one, and several (an array of them).</summary>
    private static (string One, string Many) Kind(Type type, JsonSerializerOptions options)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string)) return ("a string", "strings");
        if (type == typeof(bool)) return ("true or false", "true or false values");
        if (type == typeof(int)) return ($"an integer in [{int.MinValue}, {int.MaxValue}]", $"integers in [{int.MinValue}, {int.MaxValue}]");
        if (type == typeof(long)) return ($"an integer in [{long.MinValue}, {long.MaxValue}]", $"integers in [{long.MinValue}, {long.MaxValue}]");
        if (type == typeof(double) || type == typeof(float)) return ("a number", "numbers");
        var info = options.GetTypeInfo(type);
        return info.Kind switch
        {
            JsonTypeInfoKind.Enumerable when Kind(info.ElementType!, options).Many is var items => ($"an array of {items}", $"arrays of {items}"),
            JsonTypeInfoKind.Object or JsonTypeInfoKind.Dictionary => ("an object", "objects"),
            _ => ("a value of another kind", "values of another kind"),
        };
    }

    /// <summary>A step of a path as the serializer writes it: <c>.name</c>, <c>['odd name']</c> or <c>[2]</c>.</summary>
    [GeneratedRegex(@"\.(?<name>[^.\[]+)|\['(?<name>.*?)'\]|\[(?<index>\d+)\]")]
    private static partial Regex PathStep();

    [GeneratedRegex(@"The JSON property '(?<name>[^']*)' could not be mapped")]
    private static partial Regex UnknownMember();

    [GeneratedRegex(@"could not be converted to (?<type>[^\s.]+(\.[^\s.]+)*(\[\[.*?\]\])?)")]
    private static partial Regex Conversion();
}
