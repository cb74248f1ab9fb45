using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Admin;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// <c>GET /adapters</c> and <c>GET /adapters/{name}</c> (public: the stored adapters and the model's built-in one);
/// <c>POST /admin/adapters</c> and <c>DELETE /admin/adapters/{name}</c> (admin API key). Every error is a ProblemDetails.
/// </summary>
public static class AdapterEndpoints
{
    private const string NameField = "name", FileField = "file", ReplaceField = "replace";

    public static RouteGroupBuilder MapAdapters(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/adapters").WithTags("Adapters");
        group.MapGet("", List).WithSummary("The stored adapters.");
        group.MapGet("/{name}", Get).WithSummary("One stored adapter.");
        return group;
    }

    public static RouteGroupBuilder MapAdminAdapters(this IEndpointRouteBuilder app)
    {
        var group = app.MapAdminGroup("/admin/adapters", "Admin");
        group.MapPost("", Create)
            .WithSummary("Add an adapter: a multipart form with 'name', 'file' (a zip of a PEFT adapter folder) and optional " +
                "'replace', or JSON { name, path, replace } naming a folder on the server.");
        group.MapDelete("/{name}", Delete).WithSummary("Delete an adapter.");
        group.MapPost("/{name}/load", (string name, IAdapterStorage store, AdapterManager manager) => ChangeResidency(name, store, manager, load: true))
            .WithSummary("Make an adapter resident on the model now (it also loads on first use).");
        group.MapPost("/{name}/unload", (string name, IAdapterStorage store, AdapterManager manager) => ChangeResidency(name, store, manager, load: false))
            .WithSummary("Free an adapter's memory (once no running request uses it); it loads again on its next request.");
        return group;
    }

    private static Ok<IReadOnlyList<AdapterInfo>> List(IAdapterStorage store, AdapterManager manager) =>
        TypedResults.Ok<IReadOnlyList<AdapterInfo>>(store.List().Select(a => a with { Loaded = manager.Resident.Contains(a.Name) }).ToList());

    private static Results<Ok<AdapterInfo>, ProblemHttpResult> Get(string name, IAdapterStorage store, AdapterManager manager)
    {
        if (AdapterName.Problem(name) is { } problem)
            return InvalidName(problem);
        return store.Get(name) is { } info ? TypedResults.Ok(info with { Loaded = manager.Resident.Contains(name) }) : NotFound(name);
    }

    private static async Task<Results<Ok<AdapterInfo>, ProblemHttpResult>> ChangeResidency(string name, IAdapterStorage store, AdapterManager manager, bool load)
    {
        switch (manager.Find(name))
        {
            case AdapterLookup.Invalid invalid:
                return InvalidName(invalid.Problem);
            case AdapterLookup.NotFound:
                return NotFound(name);
            case AdapterLookup.Unusable unusable when load:
                return RequestProblems.UnusableAdapter(name, unusable.Problem);
            case AdapterLookup.Found found when load:
                try
                {
                    await manager.LoadAsync(found.Adapter);
                }
                catch (JobFailedException e)
                {
                    return RequestProblems.From(e);
                }
                catch (Exception e) when (e is not JobFailedException)
                {
                    // Whatever loading the stored files threw: the adapter's problem, said as such.
                    return TypedResults.Problem($"The adapter '{name}' could not be loaded: {e.Message}",
                        statusCode: StatusCodes.Status409Conflict, title: "Adapter not loaded");
                }
                break;
            default:
                try
                {
                    await manager.UnloadAsync(name);
                }
                catch (JobFailedException e)
                {
                    return RequestProblems.From(e);
                }
                break;
        }
        return store.Get(name) is { } info ? TypedResults.Ok(info with { Loaded = manager.Resident.Contains(name) }) : NotFound(name);
    }

    private static Results<NoContent, ProblemHttpResult> Delete(string name, IAdapterStorage store)
    {
        try
        {
            return store.Delete(name) ? TypedResults.NoContent() : NotFound(name);
        }
        catch (AdapterStoreException e)
        {
            return Problem(e);
        }
    }

    private static async Task<Results<Created<AdapterInfo>, Ok<AdapterInfo>, ProblemHttpResult>> Create(
        HttpRequest request, IAdapterStorage store, CancellationToken cancellationToken)
    {
        // Cheap refusals first, before a possibly large body is read.
        if (store.CurrentTarget() is null)
        {
            return TypedResults.Problem(store.ModelNotLoadedReason, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Model not loaded");
        }
        var limit = store.Options.MaxUploadBytes;
        if (request.ContentLength > limit)
        {
            return TooLarge(limit);
        }
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = limit;
        }

        PublishedAdapter published;
        try
        {
            if (request.HasFormContentType)
            {
                var form = await ReadFormAsync(request, limit, cancellationToken);
                published = await UploadAsync(form, store, cancellationToken);
            }
            else if (request.HasJsonContentType())
            {
                published = await RegisterAsync(request, store, cancellationToken);
            }
            else
            {
                // Untitled: the framework titles it as every 415 of the service ("Unsupported Media Type").
                return TypedResults.Problem(
                    $"Send a multipart/form-data form (name, file: a zip of the adapter folder) or JSON {{ \"name\", \"path\" }} ({ProblemReasons.Sent(request)}).",
                    statusCode: StatusCodes.Status415UnsupportedMediaType);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return request.HasJsonContentType()
                ? TypedResults.Problem($"A registration body may be at most {MaxRegistrationBytes:N0} bytes.", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Request too large")
                : TooLarge(limit);
        }
        catch (BadHttpRequestException e)
        {
            // A body that ended early or broke the protocol: the client's fault, never a 500.
            return TypedResults.Problem(e.Message, statusCode: e.StatusCode, title: "Bad request");
        }
        catch (AdapterStoreException e)
        {
            return Problem(e);
        }
        catch (RegistrationException e)
        {
            return TypedResults.Problem(new ValidationProblemDetails(new Dictionary<string, string[]> { [e.Field] = [e.Message] })
            {
                Title = "Invalid adapter registration",
                Detail = $"{e.Field}: {e.Message}",
                Status = StatusCodes.Status400BadRequest,
            });
        }
        catch (AdapterValidationException e)
        {
            return TypedResults.Problem(new ValidationProblemDetails(new Dictionary<string, string[]> { ["adapter"] = [.. e.Problems] })
            {
                Title = "Not a usable adapter for the loaded base model",
                Detail = e.Problems.Count == 1 ? e.Problems[0] : $"{e.Problems.Count} problems: " + string.Join("; ", e.Problems),
                Status = StatusCodes.Status400BadRequest,
            });
        }

        var info = published.Adapter;
        return published.Replaced ? TypedResults.Ok(info) : TypedResults.Created($"/adapters/{info.Name}", info);
    }

    private static async Task<IFormCollection> ReadFormAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        var options = new FormOptions { MultipartBodyLengthLimit = limit, ValueCountLimit = 16, ValueLengthLimit = 4096 };
        try
        {
            return await MultipartForms.ReadAsync(request, options, cancellationToken);
        }
        catch (InvalidDataException e) when (e.Message.Contains("body length limit", StringComparison.OrdinalIgnoreCase))
        {
            throw new BadHttpRequestException(e.Message, StatusCodes.Status413PayloadTooLarge, e);
        }
        catch (InvalidDataException e)
        {
            throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"the multipart form cannot be read: {e.Message}");
        }
    }

    private static async Task<PublishedAdapter> UploadAsync(IFormCollection form, IAdapterStorage store, CancellationToken cancellationToken)
    {
        var name = Single(form, NameField);
        var replace = ParseReplace(Single(form, ReplaceField));
        if (AdapterName.Problem(name) is { } nameProblem)
        {
            throw new AdapterStoreException(AdapterStoreError.InvalidName, nameProblem);
        }
        var file = form.Files.GetFiles(FileField) switch
        {
            [var single] => single,
            [] => throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"the form has no '{FileField}' field holding a zip of the adapter folder"),
            var several => throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"the form has {several.Count} '{FileField}' fields; send one zip"),
        };
        store.ThrowIfBuiltIn(name!);
        if (!replace && store.Exists(name!))
        {
            throw AdapterStore.AlreadyExists(name!);
        }

        // The form's buffered file is copied to a plain file first: ZipArchive seeks and reads synchronously.
        await using var zip = store.CreateUploadFile();
        await using (var uploaded = file.OpenReadStream())
        {
            await uploaded.CopyToAsync(zip, cancellationToken);
        }
        zip.Position = 0;
        var staging = store.CreateStagingFolder();
        try
        {
            await AdapterArchive.ExtractAsync(zip, staging, store.Options, cancellationToken);
        }
        catch
        {
            store.DiscardStaging(staging);
            throw;
        }
        return store.Publish(name!, staging, replace, AdapterOrigin.Upload);
    }

    // A registration is three fields: far below the upload limit.
    private const int MaxRegistrationBytes = 64 << 10;

    /// <summary>
    /// JSON { "name", "path", "replace" }, read strictly (as the public endpoints read theirs): an unknown field, a
    /// wrong type or a missing path is a 400 naming the field.
    /// </summary>
    private static async Task<PublishedAdapter> RegisterAsync(HttpRequest request, IAdapterStorage store, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxRegistrationBytes)
            throw new BadHttpRequestException("registration body too large", StatusCodes.Status413PayloadTooLarge);
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = MaxRegistrationBytes;
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 8 }, cancellationToken);
        }
        catch (JsonException e)
        {
            throw new RegistrationException("body", $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): send {{ \"name\", \"path\", \"replace\" }}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new RegistrationException("body", "send a JSON object { \"name\", \"path\", \"replace\" }");
            string? name = null, path = null;
            var replace = false;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                // Names and strings escaping a lone surrogate (\ud800) are not text: reading them throws.
                string field;
                try
                {
                    field = property.Name;
                }
                catch (InvalidOperationException)
                {
                    throw new RegistrationException("body", "a field name holds an unpaired UTF-16 surrogate escape, which is not text");
                }
                var value = property.Value;
                switch (field)
                {
                    case "name" or "path" when value.ValueKind is not (JsonValueKind.String or JsonValueKind.Null):
                        throw new RegistrationException(field, "must be a string");
                    case "name" or "path":
                        string? text;
                        try
                        {
                            text = value.GetString();
                        }
                        catch (InvalidOperationException)
                        {
                            throw new RegistrationException(field, "holds an unpaired UTF-16 surrogate escape, which is not text");
                        }
                        if (field == "name") name = text;
                        else path = text;
                        break;
                    case "replace" when value.ValueKind is JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null:
                        replace = value.ValueKind == JsonValueKind.True;
                        break;
                    case "replace":
                        throw new RegistrationException(field, "must be true or false");
                    default:
                        throw new RegistrationException(RequestRules.Quote(field)[1..^1], "is not a field of a registration: send name, path and optionally replace");
                }
            }
            if (AdapterName.Problem(name) is { } nameProblem)
                throw new AdapterStoreException(AdapterStoreError.InvalidName, nameProblem);
            if (string.IsNullOrWhiteSpace(path))
                throw new RegistrationException("path", "is required: an absolute path to the adapter folder on the server");
            return store.Import(name!, path, replace);
        }
    }

    /// <summary>A field of a JSON registration that cannot be used.</summary>
    private sealed class RegistrationException(string field, string problem) : Exception(problem)
    {
        public string Field { get; } = field;
    }

    private static string? Single(IFormCollection form, string field)
    {
        var values = form[field];
        return values.Count switch
        {
            0 => null,
            1 => values[0],
            _ => throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"the form has {values.Count} '{field}' fields; send one"),
        };
    }

    private static bool ParseReplace(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" or "0" => false,
        "true" or "1" => true,
        _ => throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"'{ReplaceField}' is '{value}'; use true or false"),
    };

    private static ProblemHttpResult InvalidName(string problem) => Invalid(NameField, "Invalid adapter name",
        new AdapterStoreException(AdapterStoreError.InvalidName, problem), problem);

    private static ProblemHttpResult NotFound(string name) => TypedResults.Problem(
        $"There is no adapter named '{name}'.", statusCode: StatusCodes.Status404NotFound, title: "Adapter not found");

    private static ProblemHttpResult TooLarge(long limit) => TypedResults.Problem(
        $"The request body is larger than {limit} bytes (Adapters:MaxUploadBytes).",
        statusCode: StatusCodes.Status413PayloadTooLarge, title: "Upload too large");

    private static ProblemHttpResult Problem(AdapterStoreException e)
    {
        var detail = e.Problems.Count == 1 ? e.Problems[0] : $"{e.Problems.Count} problems: " + string.Join("; ", e.Problems);
        return e.Error switch
        {
            AdapterStoreError.InvalidName => Invalid(NameField, "Invalid adapter name", e, detail),
            AdapterStoreError.InvalidContent => Invalid(FileField, "Invalid adapter upload", e, detail),
            AdapterStoreError.NotFound => TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Adapter not found"),
            AdapterStoreError.AlreadyExists => TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Adapter exists"),
            AdapterStoreError.BuiltIn => TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Adapter built in"),
            AdapterStoreError.ModelNotLoaded => TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Model not loaded"),
            _ => throw new ArgumentOutOfRangeException(nameof(e), e.Error, "Unknown adapter store error."),
        };
    }

    private static ProblemHttpResult Invalid(string field, string title, AdapterStoreException e, string detail) =>
        TypedResults.Problem(new ValidationProblemDetails(new Dictionary<string, string[]> { [field] = [.. e.Problems] })
        {
            Title = title,
            Detail = detail,
            Status = StatusCodes.Status400BadRequest,
        });
}
