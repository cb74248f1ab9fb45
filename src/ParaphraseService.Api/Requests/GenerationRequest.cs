namespace ParaphraseService.Api.Requests;

/// <summary>How a route spells the fields the pipeline may refuse, so its errors name them as the client sent them.</summary>
/// <param name="Input">The texts or prompts.</param>
/// <param name="InputIsList">The inputs came as a JSON array: errors name <c>field[i]</c>.</param>
/// <param name="AdapterIsModel">
/// The adapter is named by OpenAI's <c>model</c>, which has no malformed values, only models not served: a name no adapter
/// could have is 404 as an unknown one is, worded as OpenAI words it.
/// </param>
public sealed record RequestFields(string Input, bool InputIsList, string Adapter, string Candidates, string MaxNewTokens, bool AdapterIsModel = false);

/// <summary>
/// What <c>/paraphrase</c> and <c>/v1/completions</c> both reduce a request to once its fields are valid: inputs,
/// sampling, the adapter asked for. The <see cref="RequestPipeline"/> takes it from here.
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>Texts to paraphrase (<see cref="Templated"/>) or raw prompts.</summary>
    public required IReadOnlyList<string> Inputs { get; init; }

    /// <summary>Inputs are rendered with the adapter's prompt template and candidates cut at its end marker.</summary>
    public bool Templated { get; init; }

    /// <summary>An adapter name, or null for the base model (or the default adapter, with <see cref="UsesDefaultAdapter"/>).</summary>
    public string? Adapter { get; init; }

    /// <summary>Without <see cref="Adapter"/>, the service's default adapter serves the request (<c>/paraphrase</c>).</summary>
    public bool UsesDefaultAdapter { get; init; }

    public required int Candidates { get; init; }
    public required int MaxNewTokens { get; init; }
    public double Temperature { get; init; } = 1;
    public double TopP { get; init; } = 1;
    public int TopK { get; init; }
    public double RepetitionPenalty { get; init; } = 1;
    public long? Seed { get; init; }

    /// <summary>Stop sequences (the template's end marker is added for templated inputs).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    public bool Stream { get; init; }

    /// <summary>Rows stop once their text outgrows this many characters (see <see cref="Model.Generation.FinishReason.CharacterLimit"/>).</summary>
    public int? MaxCharacters { get; init; }

    /// <summary>Terms never generated, however cased or tokenized.</summary>
    public IReadOnlyList<string> Avoid { get; init; } = [];

    /// <summary>False: decode one token per step for this request (speculation never changes the output, only the speed).</summary>
    public bool Speculation { get; init; } = true;

    /// <summary>A batch line: its jobs wait in the queue's background lane, behind every interactive request.</summary>
    public bool Background { get; init; }

    public required RequestFields Fields { get; init; }

    /// <summary>The field naming input <paramref name="index"/>.</summary>
    public string InputField(int index) => Fields.InputIsList ? $"{Fields.Input}[{index}]" : Fields.Input;
}
