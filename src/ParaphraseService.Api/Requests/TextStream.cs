using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// Turns one candidate's tokens into text pieces as they arrive. A token can end inside a UTF-8 character (the piece
/// decodes to U+FFFD) and the start of a stop sequence may still be cut, so such tails are held back until more
/// tokens arrive. With a character limit, nothing beyond it is ever sent (<see cref="Limit"/>).
/// </summary>
public sealed class TextStream(Gpt2Tokenizer tokenizer, IReadOnlyList<string> stopSequences, int? maxCharacters = null)
{
    private readonly List<int> _tokens = [];
    private readonly int _holdBack = stopSequences.Count == 0 ? 0 : stopSequences.Max(s => s.Length);
    private int _sent;

    /// <summary>The new text that is safe to send after this token (possibly empty).</summary>
    public string Add(int token)
    {
        _tokens.Add(token);
        var text = tokenizer.Decode(_tokens);
        var safe = text.Length - _holdBack;
        var replacement = text.IndexOf('\uFFFD', _sent);
        if (replacement >= 0) safe = Math.Min(safe, replacement);
        foreach (var stop in stopSequences)
            if (text.IndexOf(stop, StringComparison.Ordinal) is var at and >= 0)
                safe = Math.Min(safe, at);
        safe = Math.Min(safe, Limit(text, maxCharacters).Length);
        if (safe <= _sent) return "";
        var piece = text[_sent..safe];
        _sent = safe;
        return piece;
    }

    /// <summary>The rest of the final text (within the limit), once the candidate finished.</summary>
    public string Finish(string finalText)
    {
        var text = Limit(finalText, maxCharacters);
        return text.Length > _sent ? text[_sent..] : "";
    }

    /// <summary>
    /// <paramref name="text"/> cut to <paramref name="maxCharacters"/> after its leading whitespace (as the limit is
    /// counted while decoding), never between the halves of a surrogate pair.
    /// </summary>
    public static string Limit(string text, int? maxCharacters)
    {
        if (maxCharacters is not { } max) return text;
        var end = text.Length - text.TrimStart().Length + max;
        if (end >= text.Length) return text;
        if (char.IsHighSurrogate(text[end - 1])) end--;
        return text[..end];
    }
}
