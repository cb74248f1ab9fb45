using System.Text.Json.Serialization;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Batches;

[JsonConverter(typeof(CamelCaseEnumConverter<BatchState>))]
public enum BatchState
{
    /// <summary>Waiting for a serving node to run it (also after a restart or a node gave it back).</summary>
    Queued,
    /// <summary>A node holds it (under a lease) and feeds its lines to the scheduler.</summary>
    Running,
    /// <summary>Every line has a result or an error.</summary>
    Completed,
    /// <summary>Cancelled: finished lines keep their results; the rest say they were cancelled.</summary>
    Cancelled,
    /// <summary>Could not go on (reported in <see cref="Batch.Error"/>); finished lines keep their results.</summary>
    Failed,
}

/// <summary>A batch of paraphrase requests, as <c>GET /batches/{id}</c> reports it.</summary>
/// <param name="Id">batch_… (unguessable: whoever holds it can read the batch, as with a capability URL).</param>
/// <param name="Lines">Requests in the file (blank lines in the middle count: each input line gets one output line).</param>
/// <param name="Succeeded">Lines with a response.</param>
/// <param name="Failed">Lines with an error: refused when the file was read (invalid JSON or fields, duplicate custom_id) or when run.</param>
/// <param name="Cancelled">Lines that had not finished when the batch was cancelled.</param>
/// <param name="Node">The node that runs it (or last did), in cluster mode its Node:Id.</param>
public sealed record Batch(
    string Id,
    BatchState Status,
    int Lines,
    int Succeeded,
    int Failed,
    int Cancelled,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error,
    string? Node)
{
    /// <summary>Lines still to run.</summary>
    public int Pending => Lines - Succeeded - Failed - Cancelled;

    /// <summary>Where the results are downloaded (JSONL, once the batch has ended).</summary>
    public string Results => $"/batches/{Id}/results";

    [JsonIgnore]
    public bool IsFinished => Status is BatchState.Completed or BatchState.Cancelled or BatchState.Failed;
}

/// <summary>Why one line has no response: a ProblemDetails' status, title and detail, and its field errors for a 400.</summary>
public sealed record BatchLineError(
    int Status,
    string Title,
    string Detail,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, string[]>? Errors = null);

/// <summary>
/// One line of a submitted file: its request (the <c>/paraphrase</c> body as JSON, checked) or why it was refused.
/// </summary>
/// <param name="Line">1-based line number in the file.</param>
public sealed record BatchLineInput(int Line, string? CustomId, string? Request, BatchLineError? Error);

/// <summary>A line a runner took to run: its request, and how many times a runner has taken it (this time included).</summary>
public sealed record PendingLine(int Line, string? CustomId, string Request, int Attempts);

/// <summary>What became of a line, as stored.</summary>
public enum LineState
{
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>A stored line for the results file: its response JSON (succeeded) or error JSON (failed), or neither.</summary>
public sealed record StoredLine(int Line, string? CustomId, LineState State, string? Result);
