using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Training.Prompts;
using static ParaphraseService.Api.OpenAi.OpenAiResponses;

namespace ParaphraseService.Api.OpenAi;

/// <summary>
/// OpenAI-compatible <c>/v1/chat/completions</c>. The conversation becomes a prompt: with an adapter as <c>model</c>,
/// the adapter's own prompt template applied to the last user message (what a paraphrase adapter was trained on);
/// with the base model, <see cref="ChatTemplate"/> (system text, then <c>User:</c>/<c>Assistant:</c> turns). From
/// there it is the same pipeline as every other route.
/// </summary>
public static class ChatCompletionsEndpoints
{
    private const int DefaultMaxTokens = 128;
    private const int MaxMessages = 256;

    public static RouteGroupBuilder MapOpenAiChatCompletions(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").WithMetadata(new RequestSizeLimitAttribute(1 << 20));
        group.MapPost("/chat/completions", Complete)
            .WithSummary("Chat completion: model (base id or adapter name), messages (system, user, assistant), max_tokens or " +
                "max_completion_tokens, temperature, top_p, n, stop, seed, stream, stream_options.")
            .Produces<ChatCompletionResponse>()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);
        return group;
    }

    private static async Task<IResult> Complete(ChatCompletionRequest request, RequestPipeline pipeline, ModelHost host, HttpContext context)
    {
        var errors = new FieldErrors();
        var messages = Messages(request.Messages, errors);
        if (request.MaxTokens is { } a && request.MaxCompletionTokens is { } b && a != b)
            errors.Add("max_completion_tokens", "differs from max_tokens; give one of them.");
        var maxTokens = request.MaxCompletionTokens ?? request.MaxTokens ?? DefaultMaxTokens;
        var maxTokensField = request.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens";
        var stops = request.Validate(maxTokens, maxTokensField, errors);
        Unsupported(request, errors);
        // An adapter answers the last user message through its own prompt template; the base model reads the whole
        // conversation in the chat template and stops where it would begin the next turn. Empty messages are fine (as
        // for OpenAI) but for that last one with an adapter: nothing would be left to answer.
        var adapter = request.AdapterName(host.Model?.Source);
        if (adapter is not null && !errors.Any && string.IsNullOrWhiteSpace(messages[^1].Content))
            errors.Add($"messages[{messages.Count - 1}].content",
                "must not be empty: with an adapter as model, the last user message is the text the adapter answers, and the only one it reads.");
        if (errors.Any)
            return RequestProblems.Invalid(errors);

        // A prompt the pipeline refuses (too long for the context) is named by what the model reads.
        var fields = new RequestFields(adapter is not null ? $"messages[{messages.Count - 1}].content" : "messages", false, "model", "n", maxTokensField,
            AdapterIsModel: true);
        var generation = adapter is not null
            ? request.ToGeneration([messages[^1].Content], templated: true, adapter, maxTokens, stops, fields)
            : request.ToGeneration([ChatTemplate.Render(messages)], templated: false, null, maxTokens, [.. stops, .. ChatTemplate.StopSequences], fields);
        return await RunAsync(pipeline, generation, adapter, "chatcmpl", request.Streams, request.IncludeUsage,
            call =>
            {
                var started = new HashSet<int>();
                var spoke = new HashSet<int>();
                return (item, choice) =>
                {
                    // Each choice's first chunk says who speaks, as OpenAI's do; the space the model writes after
                    // "Assistant:" is not part of the answer.
                    var role = started.Add(choice) ? "assistant" : null;
                    var text = spoke.Contains(choice) ? item.Text : item.Text.TrimStart();
                    if (text.Length > 0) spoke.Add(choice);
                    var finish = item.Outcome is { } o ? FinishReason(o.Results[item.Candidate]) : null;
                    return new ChatCompletionChunk(call.Id, "chat.completion.chunk", call.Created, call.Model,
                        [new ChatChunkChoice(choice, new ChatDelta(role, text.Length > 0 || role is not null ? text : null), null, finish)], null);
                };
            },
            (call, usage) => new ChatCompletionChunk(call.Id, "chat.completion.chunk", call.Created, call.Model, [], usage),
            (call, outcomes) => TypedResults.Ok(new ChatCompletionResponse(call.Id, "chat.completion", call.Created, call.Model,
                Enumerable.Range(0, call.N).Select(j => call.Result(outcomes[0], j)).Select((result, j) =>
                    new ChatChoice(j, new ChatResponseMessage("assistant", Text(call.Prepared, result).TrimStart()), null, FinishReason(result))).ToList(),
                Usage(call, outcomes))),
            context);
    }

    /// <summary>The conversation as text messages, every problem named by its place (<c>messages[2].content</c>).</summary>
    private static List<ChatMessage> Messages(IReadOnlyList<ChatMessageBody?>? bodies, FieldErrors errors)
    {
        var messages = new List<ChatMessage>();
        if (bodies is not { Count: > 0 and <= MaxMessages })
        {
            errors.Add("messages", $"must be an array of 1-{MaxMessages} messages.");
            return messages;
        }
        for (var i = 0; i < bodies.Count; i++)
        {
            var field = $"messages[{i}]";
            if (bodies[i] is not { } body)
            {
                errors.Add(field, "must be a message object.");
                continue;
            }
            ChatRole? role = body.Role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                _ => null,
            };
            if (role is null)
                errors.Add($"{field}.role", body.Role is "tool" or "function"
                    ? "tool and function messages are not supported (this service calls no tools)."
                    : "must be system, developer, user or assistant.");
            if (body.ToolCalls.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null)) errors.Add($"{field}.tool_calls", "is not supported.");
            if (body.FunctionCall.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null)) errors.Add($"{field}.function_call", "is not supported.");
            if (body.ToolCallId is not null) errors.Add($"{field}.tool_call_id", "is not supported.");
            if (body.Audio.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null)) errors.Add($"{field}.audio", "is not supported.");
            if (body.Name is not null) RequestRules.WellFormed(body.Name, $"{field}.name", errors);
            if (Content(body.Content, $"{field}.content", errors) is { } content && role is { } r)
            {
                RequestRules.Text(content, $"{field}.content", errors);
                messages.Add(new ChatMessage(r, content));
            }
        }
        if (!errors.Any && messages[^1].Role != ChatRole.User)
            errors.Add($"messages[{bodies.Count - 1}]", "the conversation must end with a user message, which the answer replies to.");
        return messages;
    }

    /// <summary>A string, or an array of text parts joined; images, audio and files are refused. Null once refused.</summary>
    private static string? Content(JsonElement content, string field, FieldErrors errors)
    {
        if (content.ValueKind == JsonValueKind.String)
            return OpenAiStrings.Text(content, field, errors);
        if (content.ValueKind != JsonValueKind.Array || content.GetArrayLength() == 0)
        {
            errors.Add(field, "must be a string or an array of text parts.");
            return null;
        }
        var text = new StringBuilder();
        var i = 0;
        var refused = false;
        foreach (var part in content.EnumerateArray())
        {
            var partField = $"{field}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                errors.Add(partField, "must be a content part with a type.");
            else if (type.GetString() != "text")
                errors.Add($"{partField}.type", $"'{type.GetString()}' parts are not supported; only text.");
            else if (!part.TryGetProperty("text", out var value) || value.ValueKind != JsonValueKind.String)
                errors.Add($"{partField}.text", "must be a string.");
            else if (part.EnumerateObject().Select(p => p.Name).FirstOrDefault(name => name is not ("type" or "text")) is { } extra)
                errors.Add($"{partField}.{extra}", "is not a known field.");
            else if (OpenAiStrings.Text(value, $"{partField}.text", errors) is { } piece)
            {
                text.Append(piece);
                continue;
            }
            refused = true;
        }
        // The text left once a part is refused is not the message: nothing more is said about it.
        return refused ? null : text.ToString();
    }

    /// <summary>OpenAI's chat fields this service does not implement, refused unless they ask for nothing.</summary>
    private static void Unsupported(ChatCompletionRequest r, FieldErrors errors)
    {
        static bool Absent(JsonElement e) => e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null;
        if (r.Logprobs == true) errors.Add("logprobs", "is not supported (only false).");
        if (r.TopLogprobs is > 0) errors.Add("top_logprobs", "is not supported.");
        if (r.Store == true) errors.Add("store", "is not supported: this service stores no completions.");
        if (!Absent(r.ResponseFormat) && !(r.ResponseFormat.ValueKind == JsonValueKind.Object
                && r.ResponseFormat.TryGetProperty("type", out var format) && format.ValueKind == JsonValueKind.String && format.GetString() == "text"
                && r.ResponseFormat.EnumerateObject().Count() == 1))
            errors.Add("response_format", "only {\"type\": \"text\"} is supported.");
        if (r.Modalities is { } modalities && modalities.Any(m => m != "text")) errors.Add("modalities", "only [\"text\"] is supported.");
        if (!Absent(r.Tools) && !(r.Tools.ValueKind == JsonValueKind.Array && r.Tools.GetArrayLength() == 0)) errors.Add("tools", "are not supported.");
        if (!Absent(r.ToolChoice) && !(r.ToolChoice.ValueKind == JsonValueKind.String && r.ToolChoice.GetString() == "none"))
            errors.Add("tool_choice", "is not supported (only \"none\").");
        if (!Absent(r.Functions)) errors.Add("functions", "are not supported.");
        if (!Absent(r.FunctionCall) && !(r.FunctionCall.ValueKind == JsonValueKind.String && r.FunctionCall.GetString() == "none"))
            errors.Add("function_call", "is not supported (only \"none\").");
        if (!Absent(r.Audio)) errors.Add("audio", "is not supported.");
        if (!Absent(r.Prediction)) errors.Add("prediction", "is not supported.");
        if (!Absent(r.WebSearchOptions)) errors.Add("web_search_options", "is not supported.");
        if (r.ReasoningEffort is not null) errors.Add("reasoning_effort", "is not supported: the model does not reason in steps.");
        if (r.Verbosity is not null) errors.Add("verbosity", "is not supported.");
        if (r.ServiceTier is not (null or "auto" or "default")) errors.Add("service_tier", "only auto or default.");
        foreach (var (field, value) in new[] { ("safety_identifier", r.SafetyIdentifier), ("prompt_cache_key", r.PromptCacheKey) })
            if (value is not null) RequestRules.WellFormed(value, field, errors);
        if (r.Metadata is { } metadata)
            foreach (var (key, value) in metadata)
                if (!RequestRules.IsWellFormed(key) || !RequestRules.IsWellFormed(value ?? "")) errors.Add("metadata", "holds a string that is not text.");
    }
}
