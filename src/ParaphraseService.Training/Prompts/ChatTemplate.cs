using System.Text;

namespace ParaphraseService.Training.Prompts;

/// <summary>Who speaks in a chat message.</summary>
public enum ChatRole
{
    System,
    User,
    Assistant,
}

/// <summary>One message of a conversation, its content as plain text.</summary>
public sealed record ChatMessage(ChatRole Role, string Content);

/// <summary>
/// How a conversation becomes a prompt for a base language model, which knows no chat format of its own: system text
/// first, then each turn on its own line as <c>User: …</c> or <c>Assistant: …</c>, and the prompt ends with
/// <c>Assistant:</c> for the model to continue. The model's answer ends where it starts the next turn: at
/// <see cref="StopSequences"/>. (An adapter is prompted with its own template instead: see
/// <see cref="PromptTemplate.ForAdapter"/>.)
/// </summary>
public static class ChatTemplate
{
    public const string UserPrefix = "User:", AssistantPrefix = "Assistant:";

    /// <summary>Where the assistant's turn ends: the model beginning the next turn.</summary>
    public static IReadOnlyList<string> StopSequences { get; } = ["\n" + UserPrefix, "\n" + AssistantPrefix];

    /// <summary>
    /// The prompt for <paramref name="messages"/>: system messages (in order, one paragraph each), a blank line, the
    /// turns, then <c>Assistant:</c>. GPT-2 tokens carry their leading space, so the prompt ends without one.
    /// </summary>
    public static string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        var system = messages.Where(m => m.Role == ChatRole.System).Select(m => m.Content.Trim()).Where(c => c.Length > 0).ToList();
        if (system.Count > 0)
            prompt.Append(string.Join("\n\n", system)).Append("\n\n");
        foreach (var message in messages.Where(m => m.Role != ChatRole.System))
            prompt.Append(message.Role == ChatRole.User ? UserPrefix : AssistantPrefix).Append(' ').Append(message.Content.Trim()).Append('\n');
        return prompt.Append(AssistantPrefix).ToString();
    }
}
