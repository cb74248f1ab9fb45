using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.OpenAi;

/// <summary>
/// OpenAI's legacy completions request. Every field OpenAI defines is read: those this service implements are used;
/// the others are accepted only at their neutral value (e.g. <c>echo: false</c>, <c>presence_penalty: 0</c>) and
/// refused otherwise, so a client never gets an answer computed without what it asked for. Unknown fields are refused.
/// <c>top_k</c> and <c>repetition_penalty</c> are extensions (as vLLM takes them).
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CompletionRequest
{
    /// <summary>The base model's id or an adapter's name (see GET /v1/models); absent means the base model.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>A string, or an array of 1-32 strings (one completion set per prompt).</summary>
    [JsonPropertyName("prompt")] public JsonElement Prompt { get; init; }

    /// <summary>Most tokens per choice (default 16); the prompt plus these must fit Scheduler:MaxSequenceTokens.</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }

    /// <summary>[0, 2]; 0 (or below 1e-5) is greedy. Default 1.</summary>
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }

    /// <summary>(0, 1]. Default 1.</summary>
    [JsonPropertyName("top_p")] public double? TopP { get; init; }

    /// <summary>Choices per prompt, 1-8 (and at most Scheduler:MaxBatchRows).</summary>
    [JsonPropertyName("n")] public int? N { get; init; }

    /// <summary>A string or up to 4 strings of 1-64 characters.</summary>
    [JsonPropertyName("stop")] public JsonElement Stop { get; init; }

    /// <summary>Any 64-bit integer; choice i uses seed + i.</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    [JsonPropertyName("stream")] public bool Stream { get; init; }

    /// <summary>With include_usage, a stream ends with a chunk that carries the usage and no choices (as OpenAI does).</summary>
    [JsonPropertyName("stream_options")] public StreamOptions? StreamOptions { get; init; }

    /// <summary>Extension: keep the K most likely tokens; 0 keeps all.</summary>
    [JsonPropertyName("top_k")] public int? TopK { get; init; }

    /// <summary>Extension: [1, 2]; 1 is off.</summary>
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }

    /// <summary>An end user's id, for the caller's own abuse tracking; accepted and not used.</summary>
    [JsonPropertyName("user")] public string? User { get; init; }

    // OpenAI fields this service does not implement: accepted at their neutral values only.
    [JsonPropertyName("suffix")] public string? Suffix { get; init; }
    [JsonPropertyName("echo")] public bool? Echo { get; init; }
    [JsonPropertyName("logprobs")] public int? Logprobs { get; init; }
    [JsonPropertyName("best_of")] public int? BestOf { get; init; }
    [JsonPropertyName("presence_penalty")] public double? PresencePenalty { get; init; }
    [JsonPropertyName("frequency_penalty")] public double? FrequencyPenalty { get; init; }
    [JsonPropertyName("logit_bias")] public Dictionary<string, double>? LogitBias { get; init; }
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record StreamOptions([property: JsonPropertyName("include_usage")] bool IncludeUsage);

public sealed record CompletionChoice(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("logprobs")] object? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

public sealed record CompletionUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record CompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<CompletionChoice> Choices,
    [property: JsonPropertyName("usage")] CompletionUsage? Usage);

public sealed record ModelCard(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy);

public sealed record ModelList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelCard> Data);
