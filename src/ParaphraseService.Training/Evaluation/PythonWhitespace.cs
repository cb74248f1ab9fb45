using System.Text;

namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// Python's <c>str.isspace()</c> set, which sacreBLEU's <c>rstrip()</c> and <c>split()</c> use. It is not
/// quite .NET's <see cref="char.IsWhiteSpace(char)"/>: Python also counts the U+001C..U+001F information
/// separators, so an explicit table keeps our tokens identical to sacreBLEU's.
/// </summary>
internal static class PythonWhitespace
{
    public static bool IsWhiteSpace(char c) => c switch
    {
        >= '\u0009' and <= '\u000D' => true,
        >= '\u001C' and <= '\u0020' => true,
        '\u0085' or '\u00A0' or '\u1680' => true,
        >= '\u2000' and <= '\u200A' => true,
        '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000' => true,
        _ => false,
    };

    /// <summary>Python's <c>s.rstrip()</c>.</summary>
    public static string TrimEnd(string s)
    {
        var end = s.Length;
        while (end > 0 && IsWhiteSpace(s[end - 1]))
            end--;
        return end == s.Length ? s : s[..end];
    }

    /// <summary>Python's <c>' '.join(s.split())</c>.</summary>
    public static string JoinWords(string s)
    {
        var builder = new StringBuilder(s.Length);
        var i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && IsWhiteSpace(s[i]))
                i++;
            var start = i;
            while (i < s.Length && !IsWhiteSpace(s[i]))
                i++;
            if (i > start)
            {
                if (builder.Length > 0)
                    builder.Append(' ');
                builder.Append(s, start, i - start);
            }
        }
        return builder.ToString();
    }
}
