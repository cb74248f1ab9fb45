using System.Text.RegularExpressions;

namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// sacreBLEU's default <c>13a</c> tokenizer (the mteval-v13a.pl rules WMT scores are reported with), ported
/// rule for rule from sacrebleu/tokenizers/tokenizer_13a.py and tokenizer_re.py so that our BLEU numbers can
/// be compared with published sacreBLEU numbers. Any deviation here changes scores, so keep it literal.
/// </summary>
public static partial class Tokenizer13a
{
    /// <summary>
    /// Tokenizes one segment exactly as sacreBLEU's BLEU does before counting n-grams: trailing whitespace
    /// stripped (BLEU's <c>rstrip()</c>), the language-independent 13a clean-up, then the punctuation rules;
    /// tokens come back separated by single spaces, with no leading or trailing space.
    /// </summary>
    public static string Tokenize(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        line = PythonWhitespace.TrimEnd(line);

        // Language-independent part.
        line = line.Replace("<skipped>", "", StringComparison.Ordinal)
            .Replace("-\n", "", StringComparison.Ordinal)
            .Replace("\n", " ", StringComparison.Ordinal);
        if (line.Contains('&', StringComparison.Ordinal))
        {
            line = line.Replace("&quot;", "\"", StringComparison.Ordinal)
                .Replace("&amp;", "&", StringComparison.Ordinal)
                .Replace("&lt;", "<", StringComparison.Ordinal)
                .Replace("&gt;", ">", StringComparison.Ordinal);
        }

        // Language-dependent part (Western languages), applied to the line padded with one space each side.
        line = Punctuation().Replace(" " + line + " ", " $1 ");
        line = PeriodOrCommaAfterNonDigit().Replace(line, "$1 $2 ");
        line = PeriodOrCommaBeforeNonDigit().Replace(line, " $1 $2");
        line = DashAfterDigit().Replace(line, "$1 $2 ");

        return PythonWhitespace.JoinWords(line);
    }

    // sacreBLEU: ([\{-\~\[-\` -\&\(-\+\:-\@\/]) written with hex escapes: {|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ /
    // (so neither the apostrophe, the hyphen, the period nor the comma; those have their own rules).
    [GeneratedRegex(@"([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])", RegexOptions.CultureInvariant)]
    private static partial Regex Punctuation();

    // Period and comma split off unless preceded by a digit...
    [GeneratedRegex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant)]
    private static partial Regex PeriodOrCommaAfterNonDigit();

    // ...or unless followed by one, so "3.5" and "3,000" stay single tokens.
    [GeneratedRegex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant)]
    private static partial Regex PeriodOrCommaBeforeNonDigit();

    [GeneratedRegex(@"([0-9])(-)", RegexOptions.CultureInvariant)]
    private static partial Regex DashAfterDigit();
}
