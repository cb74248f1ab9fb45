using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.OpenAi;

/// <summary>OpenAI's legacy completions request (the fields this service implements).</summary>
public sealed record CompletionRequest
{
    /// <summary>The base model's id or an adapter's name (see GET /v1/models).</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>A string, or an array of strings (one completion set per prompt).</summary>
    [JsonPropertyName("prompt")] public JsonElement Prompt { get; init; }

    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("n")] public int? N { get; init; }

    /// <summary>A string or up to 4 strings.</summary>
    [JsonPropertyName("stop")] public JsonElement Stop { get; init; }

    [JsonPropertyName("seed")] public long? Seed { get; init; }
    [JsonPropertyName("stream")] public bool Stream { get; init; }

    /// <summary>With include_usage, a stream ends with a chunk that carries the usage and no choices (as OpenAI does).</summary>
    [JsonPropertyName("stream_options")] public StreamOptions? StreamOptions { get; init; }
}

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
