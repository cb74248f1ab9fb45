using ParaphraseService.Training.Prompts;
using System.Text.Json.Serialization;

namespace ParaphraseService.Cli.Paraphrasing;

/// <summary>
/// How candidates are sampled for each line: the fields and limits of the service's <c>POST /paraphrase</c>, used
/// for a local model as well, so both give the same kind of output for the same options.
/// </summary>
internal sealed record ParaphraseSettings
{
    public const int MaxTextsPerRequest = 32;

    public int Candidates { get; init; } = 3;
    public int MaxNewTokens { get; init; } = 48;

    /// <summary>0 is greedy: then one candidate is all there is.</summary>
    public double Temperature { get; init; } = 0.8;
    public double TopP { get; init; } = 0.95;
    public int TopK { get; init; }
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Candidate i of every line is sampled with Seed + i, whatever the batching.</summary>
    public long Seed { get; init; }

    /// <summary>A server: the adapter's name; a local model: the adapter's PEFT folder.</summary>
    public string? Adapter { get; init; }

    /// <summary>A local model decodes with prompt-lookup speculation (the same candidates, fewer passes).</summary>
    public bool Speculate { get; init; }

    /// <summary>Every option out of range, as one message each (the service's own limits).</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Candidates is < 1 or > 8) problems.Add("--candidates must be 1-8.");
        if (MaxNewTokens is < 1 or > 256) problems.Add("--max-new-tokens must be 1-256.");
        if (Temperature is < 0 or > 2 || double.IsNaN(Temperature)) problems.Add("--temperature must be in [0, 2] (0 is greedy).");
        if (TopP is <= 0 or > 1 || double.IsNaN(TopP)) problems.Add("--top-p must be in (0, 1].");
        if (TopK < 0) problems.Add("--top-k must be 0 (off) or positive.");
        if (RepetitionPenalty is < 1 or > 2 || double.IsNaN(RepetitionPenalty)) problems.Add("--repetition-penalty must be in [1, 2].");
        return problems;
    }

    public bool Greedy => Temperature == 0;
}

/// <summary>One kept candidate; the scores come from the service's sentence encoder and are absent for a local model.</summary>
internal sealed record Candidate(
    string Text,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float? Similarity = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float? Novelty = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float? Score = null);

/// <summary>What became of one input text: candidates (best first where scored) or why there are none.</summary>
internal sealed record LineOutcome(IReadOnlyList<Candidate> Candidates, DropCounts? Dropped, string? Error)
{
    public static LineOutcome Failed(string error) => new([], null, error);
}

/// <summary>One line of the JSONL output, for input line <see cref="Line"/> (1-based).</summary>
internal sealed record LineResult(
    int Line, string Input, IReadOnlyList<Candidate> Candidates,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DropCounts? Dropped,
    string? Error);

/// <summary>Where paraphrases come from: a model in this process or a running service.</summary>
internal interface IParaphraseBackend : IDisposable
{
    /// <summary>What is used, for the log ("demo (random weights, ...)", "http://host:8080 (model ...)").</summary>
    string Description { get; }

    /// <summary>How many texts one call may take.</summary>
    int MaxBatch { get; }

    /// <summary>
    /// One outcome per text, in order. A problem with one text is that text's <see cref="LineOutcome.Error"/>; a
    /// problem with the backend itself (server gone, unknown adapter) throws.
    /// </summary>
    Task<IReadOnlyList<LineOutcome>> ParaphraseAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken);
}
