using System.Text.RegularExpressions;

namespace ParaphraseService.Training.Prompts;

/// <summary>How many raw candidates were dropped, by reason; each is counted under the first reason that applies.</summary>
/// <param name="Empty">Nothing before the end marker (or only whitespace).</param>
/// <param name="Copies">The source again, up to case and whitespace.</param>
/// <param name="Duplicates">The same as an earlier kept candidate, up to case and whitespace.</param>
public sealed record DropCounts(int Empty, int Copies, int Duplicates)
{
    public int Total => Empty + Copies + Duplicates;
}

/// <summary>The candidates kept, in generated order, and what was dropped.</summary>
public sealed record FilteredCandidates(IReadOnlyList<string> Kept, DropCounts Dropped);

/// <summary>
/// What the model generated, as paraphrases: each raw candidate is cut at the template's end marker
/// (<see cref="PromptTemplate.Cut"/>; nothing left: dropped as empty), then compared after <see cref="Normalize"/>
/// (case ignored): the source again is dropped as a copy, the same as an earlier kept candidate as a duplicate (the
/// first one stays). The service scores what is kept; the command line's local model writes it as it is.
/// </summary>
public static partial class CandidateFilter
{
    public static FilteredCandidates Apply(string source, IReadOnlyList<string> rawCandidates, PromptTemplate template)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rawCandidates);
        ArgumentNullException.ThrowIfNull(template);
        var normalizedSource = Normalize(source);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var kept = new List<string>();
        int empty = 0, copies = 0, duplicates = 0;
        foreach (var raw in rawCandidates)
        {
            if (template.Cut(raw ?? "") is not { } candidate)
                empty++;
            else if (Normalize(candidate) is var normalized && string.Equals(normalized, normalizedSource, StringComparison.OrdinalIgnoreCase))
                copies++;
            else if (!seen.Add(normalized))
                duplicates++;
            else
                kept.Add(candidate);
        }
        return new FilteredCandidates(kept, new DropCounts(empty, copies, duplicates));
    }

    /// <summary>The text trimmed, with every run of whitespace as one space; comparisons of it also ignore case.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Whitespace().Replace(text.Trim(), " ");
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
