using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// Turns one candidate's tokens into text pieces as they arrive. A token can end inside a UTF-8 character (the piece
/// decodes to U+FFFD) and the start of a stop sequence may still be cut, so such tails are held back until more
/// tokens arrive.
/// </summary>
public sealed class TextStream(Gpt2Tokenizer tokenizer, IReadOnlyList<string> stopSequences)
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
        if (safe <= _sent) return "";
        var piece = text[_sent..safe];
        _sent = safe;
        return piece;
    }

    /// <summary>The rest of the final text, once the candidate finished.</summary>
    public string Finish(string finalText) => finalText.Length > _sent ? finalText[_sent..] : "";
}
