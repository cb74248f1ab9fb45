using System.Text.RegularExpressions;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// The Python regular expressions of PEFT configs, evaluated as PEFT evaluates them: on the pattern text PEFT builds
/// around the user's string, with <c>re.match</c> (anchored at the start) or <c>re.fullmatch</c>. .NET's syntax agrees
/// with Python's for what module patterns use (classes, groups, alternation, quantifiers, anchors).
/// </summary>
internal static class PeftRegex
{
    // Uploaded configs are untrusted: the linear-time engine cannot be made to backtrack for ever. It rejects
    // lookarounds and backreferences; patterns using those run on the backtracking engine under this timeout.
    private static readonly TimeSpan s_backtrackingTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A regex that matches where Python's <c>re.match(text, s)</c> (or <c>re.fullmatch</c>) does.</summary>
    /// <exception cref="ArgumentException"><paramref name="text"/> is not a regular expression .NET can compile.</exception>
    public static Regex Compile(string text, bool fullMatch)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Parse the text alone first, so that one like "a)|(b" cannot close the anchoring group below.
        _ = new Regex(text, RegexOptions.CultureInvariant);
        // The group keeps every alternative anchored; it captures nothing, so group numbers stay Python's.
        var anchored = fullMatch ? $"^(?:{text})\\z" : $"^(?:{text})";
        try
        {
            return new Regex(anchored, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        }
        catch (NotSupportedException)
        {
            return new Regex(anchored, RegexOptions.CultureInvariant, s_backtrackingTimeout);
        }
    }
}
