using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.OpenAi;

/// <summary>
/// OpenAI's chat completions request (see <see cref="OpenAiRequest"/> for the shared fields). Text conversations only:
/// tools, function calls, images, audio, log-probabilities and structured output are refused with a 400 naming the
/// field, never ignored.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ChatCompletionRequest : OpenAiRequest
{
    /// <summary>The conversation: system (or developer), user and assistant messages, 1-256 of them, ending with a user message.</summary>
    [JsonPropertyName("messages")] public IReadOnlyList<ChatMessageBody?>? Messages { get; init; }

    /// <summary>OpenAI's newer name for max_tokens (give one, or both equal). Default 128.</summary>
    [JsonPropertyName("max_completion_tokens")] public int? MaxCompletionTokens { get; init; }

    /// <summary>Accepted and not used (no completion is stored).</summary>
    [JsonPropertyName("metadata")] public Dictionary<string, string>? Metadata { get; init; }
    [JsonPropertyName("service_tier")] public string? ServiceTier { get; init; }
    [JsonPropertyName("safety_identifier")] public string? SafetyIdentifier { get; init; }
    [JsonPropertyName("prompt_cache_key")] public string? PromptCacheKey { get; init; }
    [JsonPropertyName("parallel_tool_calls")] public bool? ParallelToolCalls { get; init; }

    // OpenAI fields this service does not implement: accepted at their neutral values only.
    [JsonPropertyName("store")] public bool? Store { get; init; }
    [JsonPropertyName("logprobs")] public bool? Logprobs { get; init; }
    [JsonPropertyName("top_logprobs")] public int? TopLogprobs { get; init; }
    [JsonPropertyName("response_format")] public JsonElement ResponseFormat { get; init; }
    [JsonPropertyName("modalities")] public IReadOnlyList<string>? Modalities { get; init; }
    [JsonPropertyName("tools")] public JsonElement Tools { get; init; }
    [JsonPropertyName("tool_choice")] public JsonElement ToolChoice { get; init; }
    [JsonPropertyName("functions")] public JsonElement Functions { get; init; }
    [JsonPropertyName("function_call")] public JsonElement FunctionCall { get; init; }
    [JsonPropertyName("audio")] public JsonElement Audio { get; init; }
    [JsonPropertyName("prediction")] public JsonElement Prediction { get; init; }
    [JsonPropertyName("web_search_options")] public JsonElement WebSearchOptions { get; init; }
    [JsonPropertyName("reasoning_effort")] public string? ReasoningEffort { get; init; }
    [JsonPropertyName("verbosity")] public string? Verbosity { get; init; }
}

/// <summary>One message: a role and its text (a string, or an array of text parts).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ChatMessageBody
{
    [JsonPropertyName("role")] public string? Role { get; init; }
    [JsonPropertyName("content")] public JsonElement Content { get; init; }

    /// <summary>A participant's name: accepted and not used.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    [JsonPropertyName("tool_calls")] public JsonElement ToolCalls { get; init; }
    [JsonPropertyName("tool_call_id")] public string? ToolCallId { get; init; }
    [JsonPropertyName("function_call")] public JsonElement FunctionCall { get; init; }
    [JsonPropertyName("refusal")] public string? Refusal { get; init; }
    [JsonPropertyName("audio")] public JsonElement Audio { get; init; }
}

public sealed record ChatResponseMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content,
    [property: JsonPropertyName("refusal")] string? Refusal = null);

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] ChatResponseMessage Message,
    [property: JsonPropertyName("logprobs")] object? Logprobs,
    [property: JsonPropertyName("finish_reason")] string FinishReason);

public sealed record ChatCompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatChoice> Choices,
    [property: JsonPropertyName("usage")] CompletionUsage Usage);

/// <summary>What a streamed chunk adds to a choice: the role once, at its start, then pieces of content.</summary>
public sealed record ChatDelta(
    [property: JsonPropertyName("role"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);

public sealed record ChatChunkChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("delta")] ChatDelta Delta,
    [property: JsonPropertyName("logprobs")] object? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

public sealed record ChatCompletionChunk(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonPropertyName("usage")] CompletionUsage? Usage);
