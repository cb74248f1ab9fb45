using System.Text.Json;
using System.Text.Json.Serialization;
using ParaphraseService.Api.Requests;

namespace ParaphraseService.Api.OpenAi;

/// <summary>
/// The fields OpenAI's completions and chat completions share. Those this service implements are used; the others are
/// accepted only at their neutral value (e.g. <c>presence_penalty: 0</c>) and refused otherwise, so a client never gets
/// an answer computed without what it asked for. <c>top_k</c> and <c>repetition_penalty</c> are extensions (as vLLM
/// takes them). Unknown fields are refused (each request type says so).
/// </summary>
public abstract record OpenAiRequest
{
    /// <summary>The base model's id or an adapter's name (see GET /v1/models); absent means the base model.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>Most tokens per choice; the prompt plus these must fit Scheduler:MaxSequenceTokens.</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }

    /// <summary>[0, 2]; 0 (or below 1e-5) is greedy. Default 1.</summary>
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }

    /// <summary>(0, 1]. Default 1.</summary>
    [JsonPropertyName("top_p")] public double? TopP { get; init; }

    /// <summary>Choices per prompt, 1-8 (and at most Scheduler:MaxBatchRows, unless greedy: then one row serves them all).</summary>
    [JsonPropertyName("n")] public int? N { get; init; }

    /// <summary>A string or up to 4 strings of 1-64 characters.</summary>
    [JsonPropertyName("stop")] public JsonElement Stop { get; init; }

    /// <summary>Any 64-bit integer; choice i uses seed + i.</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>Server-sent events. Null, as for every optional field here, means the default (false), as OpenAI reads it.</summary>
    [JsonPropertyName("stream")] public bool? Stream { get; init; }

    /// <summary>With include_usage, a stream ends with a chunk that carries the usage and no choices (as OpenAI does).</summary>
    [JsonPropertyName("stream_options")] public StreamOptions? StreamOptions { get; init; }

    /// <summary>Extension: keep the K most likely tokens; 0 keeps all.</summary>
    [JsonPropertyName("top_k")] public int? TopK { get; init; }

    /// <summary>Extension: [1, 2]; 1 is off.</summary>
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }

    /// <summary>An end user's id, for the caller's own abuse tracking; accepted and not used.</summary>
    [JsonPropertyName("user")] public string? User { get; init; }

    /// <summary>Extension: no choice longer than this many characters (1-65536); decoding stops there, finish_reason "length".</summary>
    [JsonPropertyName("max_chars")] public int? MaxChars { get; init; }

    /// <summary>Extension: up to 16 terms never generated, however cased or split into tokens.</summary>
    [JsonPropertyName("avoid")] public IReadOnlyList<string?>? Avoid { get; init; }

    /// <summary>Extension: false decodes one token per step (speculation changes the speed, never the output).</summary>
    [JsonPropertyName("speculation")] public bool? Speculation { get; init; }

    /// <summary>/paraphrase's candidate filters, named here so their refusal can say where they belong.</summary>
    [JsonPropertyName("keep")] public JsonElement Keep { get; init; }
    [JsonPropertyName("min_similarity")] public JsonElement MinSimilarity { get; init; }

    [JsonPropertyName("presence_penalty")] public double? PresencePenalty { get; init; }
    [JsonPropertyName("frequency_penalty")] public double? FrequencyPenalty { get; init; }
    [JsonPropertyName("logit_bias")] public Dictionary<string, double>? LogitBias { get; init; }

    /// <summary>The choices per prompt asked for (1 when absent).</summary>
    [JsonIgnore] public int Choices => N ?? 1;

    /// <summary>Whether the answer is streamed (false when absent).</summary>
    [JsonIgnore] public bool Streams => Stream ?? false;

    /// <summary>Whether a stream ends with a usage chunk.</summary>
    [JsonIgnore] public bool IncludeUsage => StreamOptions?.IncludeUsage ?? false;

    /// <summary>
    /// The shared fields' problems; <paramref name="maxTokens"/> is the route's resolved token limit, from the field
    /// <paramref name="maxTokensField"/>. Returns the stop sequences.
    /// </summary>
    public IReadOnlyList<string> Validate(int maxTokens, string maxTokensField, FieldErrors errors)
    {
        RequestRules.Count(Choices, "n", RequestRules.MaxCandidates, errors);
        RequestRules.Count(maxTokens, maxTokensField, OpenAiLimits.MaxTokens, errors);
        RequestRules.Temperature(Temperature ?? 1, "temperature", errors);
        RequestRules.TopP(TopP ?? 1, "top_p", errors);
        RequestRules.TopK(TopK ?? 0, "top_k", errors);
        RequestRules.RepetitionPenalty(RepetitionPenalty ?? 1, "repetition_penalty", errors);
        var stops = OpenAiStrings.Read(Stop, "stop", RequestRules.MaxStopSequences, required: false, errors);
        RequestRules.StopSequences(stops, "stop", errors);
        if (Model is not null) RequestRules.WellFormed(Model, "model", errors);
        if (User is not null) RequestRules.WellFormed(User, "user", errors);
        if (StreamOptions is not null && !Streams)
            errors.Add("stream_options", "is only allowed with stream: true.");
        if (PresencePenalty is { } presence && presence != 0) errors.Add("presence_penalty", "is not supported (only 0); repetition_penalty is.");
        if (FrequencyPenalty is { } frequency && frequency != 0) errors.Add("frequency_penalty", "is not supported (only 0); repetition_penalty is.");
        if (LogitBias is { Count: > 0 }) errors.Add("logit_bias", "is not supported (only empty).");
        RequestRules.MaxCharacters(MaxChars, "max_chars", errors);
        RequestRules.Terms(Avoid, "avoid", errors);
        foreach (var (field, value) in new[] { ("keep", Keep), ("min_similarity", MinSimilarity) })
            if (value.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
                errors.Add(field, "filters candidates, which only POST /paraphrase returns; use it there.");
        return stops.OfType<string>().ToList();
    }

    /// <summary>The request for the pipeline, once valid: one input per prompt (or the rendered chat).</summary>
    public GenerationRequest ToGeneration(IReadOnlyList<string> inputs, bool templated, string? adapter, int maxTokens, IReadOnlyList<string> stops,
        RequestFields fields) => new()
    {
        Inputs = inputs,
        Templated = templated,
        Adapter = adapter,
        Candidates = Choices,
        MaxNewTokens = maxTokens,
        Temperature = Temperature ?? 1,
        TopP = TopP ?? 1,
        TopK = TopK ?? 0,
        RepetitionPenalty = RepetitionPenalty ?? 1,
        Seed = Seed,
        Stop = stops,
        Stream = Streams,
        MaxCharacters = MaxChars,
        Avoid = Avoid?.Select(t => t!.Trim()).ToList() ?? [],
        Speculation = Speculation ?? true,
        Fields = fields,
    };

    /// <summary>The adapter a <c>model</c> names: null for the base model (its own id, or none).</summary>
    public string? AdapterName(string? baseModel) => string.IsNullOrEmpty(Model) || Model == baseModel ? null : Model;
}

/// <param name="IncludeObfuscation">
/// OpenAI pads its chunks with random characters against side channels unless this is false; this service pads nothing,
/// so either value is accepted and changes nothing.
/// </param>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record StreamOptions(
    [property: JsonPropertyName("include_usage")] bool? IncludeUsage,
    [property: JsonPropertyName("include_obfuscation")] bool? IncludeObfuscation);

public static class OpenAiLimits
{
    /// <summary>max_tokens above this is refused outright (the token budget refuses far less anyway).</summary>
    public const int MaxTokens = 1 << 20;
}

/// <summary>OpenAI's string-or-array fields.</summary>
public static class OpenAiStrings
{
    /// <summary>A string or an array of strings (null elements kept, for the caller to name).</summary>
    public static List<string?> Read(JsonElement value, string field, int max, bool required, FieldErrors errors)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null when !required:
                return [];
            case JsonValueKind.String:
                return [Text(value, field, errors)];
            case JsonValueKind.Array when value.GetArrayLength() is > 0 and var count && count <= max:
                if (value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                    return value.EnumerateArray().Select((e, i) => Text(e, $"{field}[{i}]", errors)).ToList();
                if (field == "prompt" && value.EnumerateArray().Any(e => e.ValueKind is JsonValueKind.Number or JsonValueKind.Array))
                {
                    errors.Add(field, "token-id prompts are not supported; send text.");
                    return [];
                }
                break;
        }
        errors.Add(field, $"must be a string or an array of 1-{max} strings.");
        return [];
    }

    /// <summary>A JSON string's text; null (with an error) when it escapes a lone surrogate, which is not text.</summary>
    public static string? Text(JsonElement value, string field, FieldErrors errors)
    {
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            errors.Add(field, "holds an unpaired UTF-16 surrogate (e.g. \\ud800 alone), which is not text.");
            return null;
        }
    }
}
