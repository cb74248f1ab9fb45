using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http.HttpResults;
using ParaphraseService.Api.Paraphrasing;
using ParaphraseService.Api.Requests;

namespace ParaphraseService.Api.Batches;

/// <summary>
/// Reads a batch file (JSONL) as it streams in and checks every line by the rules of <c>POST /paraphrase</c>: the same
/// deserializer, the same field validation (<see cref="ParaphraseEndpoints.Validate"/>). A bad line becomes that line's
/// error (stored with the batch, reported in the results in its place); only a problem with the whole file refuses the
/// batch: too large or too many lines (413), nothing in it, or not JSONL at all (no line is a JSON object).
/// What the service's state decides (the adapter exists, the prompt fits the context) is checked when the line runs.
/// </summary>
/// <remarks>
/// A line is <c>{"custom_id": "...", "body": {...a /paraphrase request...}}</c>, optionally with OpenAI's
/// <c>"method": "POST"</c> and <c>"url": "/paraphrase"</c>; or flat, the request's fields beside <c>custom_id</c>. Blank
/// lines at the end of the file are ignored; a blank line between requests is a line (an error), so the results keep
/// one line per input line.
/// </remarks>
internal static class BatchFile
{
    public const int MaxCustomIdCharacters = 512;

    /// <summary>The one target a batch line may name.</summary>
    public const string Url = "/paraphrase";

    public sealed record Result(IReadOnlyList<BatchLineInput>? Lines, ProblemHttpResult? Problem);

    public static async Task<Result> ReadAsync(Stream stream, BatchOptions options, JsonSerializerOptions json, CancellationToken cancellationToken)
    {
        var reader = new LineReader(options, json);
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long total = 0;
            while (await stream.ReadAsync(chunk, cancellationToken) is var read and > 0)
            {
                total += read;
                if (total > options.MaxBytes)
                    return new Result(null, FileTooLarge(options.MaxBytes));
                if (reader.Add(chunk.AsSpan(0, read)) is { } problem)
                    return new Result(null, problem);
            }
            return reader.Finish();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    public static ProblemHttpResult FileTooLarge(long limit) => TypedResults.Problem(
        $"The file may be at most {limit:N0} bytes (Batches:MaxBytes); split it into several batches.",
        statusCode: StatusCodes.Status413PayloadTooLarge, title: "Batch too large");

    private static ProblemHttpResult TooManyLines(int limit) => TypedResults.Problem(
        $"The file holds more than {limit:N0} lines (Batches:MaxLines); split it into several batches.",
        statusCode: StatusCodes.Status413PayloadTooLarge, title: "Batch too large");

    private static ProblemHttpResult Invalid(string detail) => TypedResults.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: "Invalid batch file");

    /// <summary>Splits bytes into lines as they come, keeping at most one line (up to the line limit) in memory.</summary>
    private sealed class LineReader(BatchOptions options, JsonSerializerOptions json)
    {
        private readonly List<BatchLineInput> _lines = [];
        private readonly Dictionary<string, int> _customIds = new(StringComparer.Ordinal);
        private readonly ArrayBufferWriter<byte> _current = new();
        private long _currentBytes;
        private int _number;
        private int _blankRun; // blank lines not yet known to be followed by a request
        private bool _anyObject;
        private byte? _firstByte;

        public ProblemHttpResult? Add(ReadOnlySpan<byte> bytes)
        {
            while (true)
            {
                var newline = bytes.IndexOf((byte)'\n');
                var part = newline < 0 ? bytes : bytes[..newline];
                _currentBytes += part.Length;
                if (_currentBytes <= BatchOptions.MaxLineBytes)
                    _current.Write(part);
                if (newline < 0)
                    return null;
                bytes = bytes[(newline + 1)..];
                if (EndLine() is { } problem)
                    return problem;
            }
        }

        public Result Finish()
        {
            if (_currentBytes > 0 && EndLine() is { } problem)
                return new Result(null, problem);
            // Blank lines at the very end (an editor's trailing newlines) are not requests.
            if (_lines.Count == 0)
                return new Result(null, Invalid("The file holds no requests: it is empty or blank. Send JSONL, one request object per line."));
            if (!_anyObject)
            {
                var hint = _firstByte == (byte)'['
                    ? "It looks like a JSON array: put each request object on a line of its own instead (JSONL)."
                    : $"Line 1: {_lines[0].Error?.Detail}";
                return new Result(null, Invalid(
                    "No line of the file is a JSON object: send JSONL, one request per line, e.g. {\"custom_id\": \"1\", \"body\": {\"text\": \"...\"}}. " + hint));
            }
            return new Result(_lines, null);
        }

        private ProblemHttpResult? EndLine()
        {
            var number = ++_number;
            var bytes = _current.WrittenSpan;
            var length = _currentBytes;
            // A UTF-8 byte order mark (some editors write one) is not part of the first line; looked for in the whole line,
            // as a chunked body may bring its three bytes in separate reads.
            if (number == 1 && bytes.StartsWith("\uFEFF"u8))
            {
                bytes = bytes[3..];
                length -= 3;
            }
            _current.ResetWrittenCount();
            _currentBytes = 0;
            if (length <= BatchOptions.MaxLineBytes && bytes.TrimEnd("\r"u8).Trim(" \t\r"u8).IsEmpty)
            {
                _blankRun++;
                return null;
            }
            if (_lines.Count + _blankRun + 1 > options.MaxLines)
                return TooManyLines(options.MaxLines);
            for (var blank = number - _blankRun; blank < number; blank++)
                _lines.Add(new BatchLineInput(blank, null, null, Error(400, "Invalid request",
                    "The line is blank; each line must be one request object (blank lines only at the end of the file are ignored).")));
            _blankRun = 0;
            _firstByte ??= length <= BatchOptions.MaxLineBytes ? bytes.TrimStart(" \t"u8)[0] : null;
            _lines.Add(length > BatchOptions.MaxLineBytes
                ? new BatchLineInput(number, null, null, Error(StatusCodes.Status413PayloadTooLarge, "Line too large",
                    $"The line is {length:N0} bytes; a line may be at most {BatchOptions.MaxLineBytes:N0} (as a POST /paraphrase body)."))
                : Parse(number, bytes.TrimEnd("\r"u8)));
            return null;
        }

        private BatchLineInput Parse(int number, ReadOnlySpan<byte> bytes)
        {
            if (!Utf8.IsValid(bytes))
                return new BatchLineInput(number, null, null, Error(400, "Invalid request", "The line is not valid UTF-8 text."));
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(bytes.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
            }
            catch (JsonException e)
            {
                return new BatchLineInput(number, null, null, Error(400, "Invalid request", $"The line is not valid JSON: {Reason(e)}"));
            }
            using (document)
            {
                try
                {
                    return Parse(number, document.RootElement);
                }
                catch (InvalidOperationException)
                {
                    // System.Text.Json reads a name or string escaping a lone surrogate ("\ud800") as an error, not as text.
                    return new BatchLineInput(number, null, null, Error(400, "Invalid request",
                        "The line holds an unpaired UTF-16 surrogate escape (e.g. \\ud800 alone) in a name or a string, which is not text."));
                }
            }
        }

        private BatchLineInput Parse(int number, JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
                return new BatchLineInput(number, null, null, Error(400, "Invalid request",
                    $"The line is a JSON {Kind(root.ValueKind)}; each line must be one request object with a custom_id."));
            _anyObject = true;
            var (customId, idProblem) = CustomId(root, number);
            if (idProblem is not null)
                return new BatchLineInput(number, customId, null, idProblem);
            var (body, bodyProblem) = Body(root);
            if (bodyProblem is not null)
                return new BatchLineInput(number, customId, null, bodyProblem);
            return new BatchLineInput(number, customId, body, Check(body!));
        }

        /// <summary>The line's custom_id, registered as taken; or why it has none usable (then the id is echoed only when it is one).</summary>
        private (string? Id, BatchLineError? Problem) CustomId(JsonElement root, int number)
        {
            if (!root.TryGetProperty("custom_id", out var value))
                return (null, Field("custom_id", "is required: a string that names this line in the results."));
            if (value.ValueKind != JsonValueKind.String)
                return (null, Field("custom_id", $"must be a string, not a JSON {Kind(value.ValueKind)}."));
            var id = value.GetString()!;
            if (id.Length is 0 or > MaxCustomIdCharacters)
                return (null, Field("custom_id", $"must be 1-{MaxCustomIdCharacters} characters (got {id.Length:N0})."));
            if (!RequestRules.IsWellFormed(id))
                return (null, Field("custom_id", "holds an unpaired UTF-16 surrogate (e.g. \\ud800 alone), which is not text."));
            if (_customIds.TryGetValue(id, out var first))
                return (id, Field("custom_id", $"{RequestRules.Quote(id)} is line {first}'s already; each line needs a custom_id of its own."));
            _customIds[id] = number;
            return (id, null);
        }

        /// <summary>The request as JSON: the <c>body</c> member, or the line's other fields (a flat line).</summary>
        private static (string? Body, BatchLineError? Problem) Body(JsonElement root)
        {
            if (root.TryGetProperty("body", out var body))
            {
                foreach (var member in root.EnumerateObject())
                {
                    switch (member.Name)
                    {
                        case "custom_id" or "body":
                            break;
                        case "method" when member.Value.ValueKind == JsonValueKind.String && string.Equals(member.Value.GetString(), "POST", StringComparison.OrdinalIgnoreCase):
                            break;
                        case "method":
                            return (null, Field("method", "must be \"POST\" (or left out)."));
                        case "url" when member.Value.ValueKind == JsonValueKind.String && member.Value.GetString()?.TrimEnd('/') == Url:
                            break;
                        case "url":
                            return (null, Field("url", $"must be \"{Url}\" (or left out): only paraphrase requests are batched."));
                        default:
                            return (null, Field(member.Name, "is not a field of a batch line: custom_id, body (the POST /paraphrase request), and optionally method and url."));
                    }
                }
                return body.ValueKind == JsonValueKind.Object
                    ? (body.GetRawText(), null)
                    : (null, Field("body", $"must be a JSON object (the POST /paraphrase request), not a JSON {Kind(body.ValueKind)}."));
            }
            // Flat: the request's own fields beside custom_id.
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                foreach (var member in root.EnumerateObject().Where(m => m.Name != "custom_id"))
                    member.WriteTo(writer);
                writer.WriteEndObject();
            }
            return (Encoding.UTF8.GetString(buffer.WrittenSpan), null);
        }

        /// <summary>The request by the rules of POST /paraphrase: null when it may run.</summary>
        private BatchLineError? Check(string body)
        {
            ParaphraseRequest? request;
            try
            {
                request = JsonSerializer.Deserialize<ParaphraseRequest>(body, json);
            }
            catch (JsonException e)
            {
                var (field, reason) = BadRequestHandler.Describe(e, typeof(ParaphraseRequest), json);
                return Field(field, reason);
            }
            catch (InvalidOperationException)
            {
                return Field("body", "holds an unpaired UTF-16 surrogate escape (e.g. \\ud800 alone), which is not text.");
            }
            if (request is null)
                return Field("body", "must be a JSON object (the POST /paraphrase request).");
            var errors = ParaphraseEndpoints.Validate(request, out _);
            if (request.Stream)
                errors.Add("stream", "a batch line's response is stored whole: leave stream out (or false).");
            return errors.Any ? Invalid(errors) : null;
        }
    }

    private static BatchLineError Error(int status, string title, string detail) => new(status, title, detail);

    private static BatchLineError Field(string field, string message)
    {
        var errors = new FieldErrors();
        errors.Add(field, message);
        return Invalid(errors);
    }

    /// <summary>A 400 by field, as <see cref="RequestProblems.Invalid(FieldErrors)"/> answers it for a request.</summary>
    private static BatchLineError Invalid(FieldErrors errors)
    {
        var byField = errors.ToDictionary();
        return new BatchLineError(400, "Invalid request", string.Join(" ", byField.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}"))), byField);
    }

    private static string Reason(JsonException e) => e.Message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd();

    private static string Kind(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "object",
    };
}
