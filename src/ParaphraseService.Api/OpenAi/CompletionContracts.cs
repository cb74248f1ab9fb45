using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.OpenAi;

/// <summary>OpenAI's legacy completions request (see <see cref="OpenAiRequest"/> for the shared fields).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CompletionRequest : OpenAiRequest
{
    /// <summary>A string, or an array of 1-32 strings (one completion set per prompt).</summary>
    [JsonPropertyName("prompt")] public JsonElement Prompt { get; init; }

    // OpenAI fields this service does not implement: accepted at their neutral values only.
    [JsonPropertyName("suffix")] public string? Suffix { get; init; }
    [JsonPropertyName("echo")] public bool? Echo { get; init; }
    [JsonPropertyName("logprobs")] public int? Logprobs { get; init; }
    [JsonPropertyName("best_of")] public int? BestOf { get; init; }
}

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
