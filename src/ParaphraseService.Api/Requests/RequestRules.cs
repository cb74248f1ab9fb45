using System.Text;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// The rules every generation route applies to its fields, in one place, so <c>/paraphrase</c> and
/// <c>/v1/completions</c> accept the same values and refuse the same ones with the same words. Numbers must be finite
/// and in range in the precision they are used in (sampling runs in fp32); strings must be well-formed UTF-16 (JSON
/// can escape a lone surrogate, which is not text).
/// </summary>
public static class RequestRules
{
    /// <summary>Texts (or prompts) in one request.</summary>
    public const int MaxInputs = 32;

    /// <summary>Candidates (OpenAI's n) per text; also at most <c>Scheduler:MaxBatchRows</c> when sampled (greedy decodes one row).</summary>
    public const int MaxCandidates = 8;

    /// <summary>Characters in one text or prompt (its tokens must also fit <c>Scheduler:MaxSequenceTokens</c>).</summary>
    public const int MaxInputCharacters = 65_536;

    public const int MaxStopSequences = 4;
    public const int MaxStopCharacters = 64;

    public const double MaxTemperature = 2;

    /// <summary>
    /// Temperatures above 0 and below this decode greedily: the distribution is already its argmax, and dividing fp32
    /// logits by less risks overflowing them (vLLM draws the same line).
    /// </summary>
    public const double MinSamplingTemperature = 1e-5;

    public const double MinRepetitionPenalty = 1, MaxRepetitionPenalty = 2;

    /// <summary>Terms in a <c>keep</c> or <c>avoid</c> list, and characters per term.</summary>
    public const int MaxTerms = 16, MaxTermCharacters = 64;

    /// <summary>A text to generate from: present, not blank, not too long, well-formed.</summary>
    public static void Input(string? value, string field, FieldErrors errors)
    {
        if (value is null)
            errors.Add(field, "must be a string.");
        else if (string.IsNullOrWhiteSpace(value))
            errors.Add(field, "must not be empty.");
        else
            Text(value, field, errors);
    }

    /// <summary>Text that goes into a prompt and may be empty (a chat message): not too long, well-formed.</summary>
    public static void Text(string value, string field, FieldErrors errors)
    {
        if (value.Length > MaxInputCharacters)
            errors.Add(field, $"is {value.Length} characters long; at most {MaxInputCharacters} are allowed.");
        else
            WellFormed(value, field, errors);
    }

    /// <summary>Any string field: well-formed UTF-16 (no lone surrogate, which JSON can escape but no text holds).</summary>
    public static void WellFormed(string value, string field, FieldErrors errors)
    {
        if (!IsWellFormed(value))
            errors.Add(field, "holds an unpaired UTF-16 surrogate (e.g. \\ud800 alone), which is not text.");
    }

    public static bool IsWellFormed(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (!char.IsSurrogate(value[i])) continue;
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                i++;
            else
                return false;
        }
        return true;
    }

    public static void Count(int value, string field, int max, FieldErrors errors)
    {
        if (value < 1 || value > max)
            errors.Add(field, $"must be 1-{max} (got {value}).");
    }

    public static void Temperature(double value, string field, FieldErrors errors)
    {
        if (!double.IsFinite(value) || value < 0 || value > MaxTemperature)
            errors.Add(field, $"must be in [0, {MaxTemperature}] (0, or anything below {MinSamplingTemperature}, is greedy decoding).");
    }

    public static void TopP(double value, string field, FieldErrors errors)
    {
        if (!double.IsFinite(value) || value <= 0 || value > 1)
            errors.Add(field, "must be in (0, 1].");
    }

    public static void TopK(int value, string field, FieldErrors errors)
    {
        if (value < 0)
            errors.Add(field, "must be 0 (off) or positive.");
    }

    public static void RepetitionPenalty(double value, string field, FieldErrors errors)
    {
        if (!double.IsFinite(value) || value < MinRepetitionPenalty || value > MaxRepetitionPenalty)
            errors.Add(field, $"must be in [{MinRepetitionPenalty}, {MaxRepetitionPenalty}] (1 is off).");
    }

    public static void StopSequences(IReadOnlyList<string?> stops, string field, FieldErrors errors)
    {
        if (stops.Count > MaxStopSequences)
        {
            errors.Add(field, $"holds {stops.Count} stop sequences; at most {MaxStopSequences} are allowed.");
            return;
        }
        for (var i = 0; i < stops.Count; i++)
        {
            var name = stops.Count == 1 ? field : $"{field}[{i}]";
            // Null: a string that is not text (a lone surrogate), refused as such where it was read.
            if (stops[i] is null)
                continue;
            if (stops[i]!.Length == 0)
                errors.Add(name, "a stop sequence must not be empty.");
            else if (stops[i]!.Length > MaxStopCharacters)
                errors.Add(name, $"a stop sequence may hold at most {MaxStopCharacters} characters.");
            else
                WellFormed(stops[i]!, name, errors);
        }
    }

    /// <summary>A list of terms (keep, avoid): up to <see cref="MaxTerms"/>, each 1-<see cref="MaxTermCharacters"/> characters of text.</summary>
    public static void Terms(IReadOnlyList<string?>? terms, string field, FieldErrors errors)
    {
        if (terms is null) return;
        if (terms.Count > MaxTerms)
        {
            errors.Add(field, $"holds {terms.Count} terms; at most {MaxTerms} are allowed.");
            return;
        }
        for (var i = 0; i < terms.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(terms[i]))
                errors.Add($"{field}[{i}]", "a term must not be empty.");
            else if (terms[i]!.Length > MaxTermCharacters)
                errors.Add($"{field}[{i}]", $"a term may hold at most {MaxTermCharacters} characters.");
            else
                WellFormed(terms[i]!, $"{field}[{i}]", errors);
        }
    }

    /// <summary>A character limit for candidates: 1-<see cref="MaxInputCharacters"/>.</summary>
    public static void MaxCharacters(int? value, string field, FieldErrors errors)
    {
        if (value is < 1 or > MaxInputCharacters)
            errors.Add(field, $"must be 1-{MaxInputCharacters} (got {value}).");
    }

    /// <summary>Whether a valid temperature samples (else it decodes greedily).</summary>
    public static bool Samples(double temperature) => temperature >= MinSamplingTemperature;

    /// <summary>A short, printable rendering of a value a client sent, for error messages.</summary>
    public static string Quote(string value)
    {
        var shown = value.Length > 64 ? value[..64] + "…" : value;
        var builder = new StringBuilder(shown.Length + 2).Append('\'');
        foreach (var c in shown)
            builder.Append(char.IsControl(c) || char.IsSurrogate(c) ? $"\\u{(int)c:x4}" : c.ToString());
        return builder.Append('\'').ToString();
    }
}
