using System.Text.RegularExpressions;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// PEFT's <c>target_modules</c> (and <c>exclude_modules</c>): either a list of names, or one string that is the
/// shorthand <c>"all-linear"</c> or a regular expression. Matching follows PEFT's <c>check_target_module_exists</c>: a
/// name selects the module whose full path equals it or ends with "." + name; a regex must match the whole path
/// (Python's <c>re.fullmatch</c>).
/// </summary>
public sealed record PeftTargetModules
{
    /// <summary>PEFT's shorthand for every Linear layer except the model's output layer (compared case-insensitively).</summary>
    public const string AllLinearShorthand = "all-linear";

    private readonly Regex? _regex;

    private PeftTargetModules(IReadOnlyList<string>? names, string? pattern)
    {
        Names = names;
        Pattern = pattern;
        if (pattern is not null && !IsAllLinear)
        {
            _regex = Compile(pattern);
        }
    }

    /// <summary>The list form, in file order; null for the string form.</summary>
    public IReadOnlyList<string>? Names { get; }

    /// <summary>The string form (<c>"all-linear"</c> or a regex); null for the list form.</summary>
    public string? Pattern { get; }

    public bool IsAllLinear => Pattern is not null && Pattern.Equals(AllLinearShorthand, StringComparison.OrdinalIgnoreCase);

    public static PeftTargetModules AllLinear { get; } = new(null, AllLinearShorthand);

    public static PeftTargetModules FromNames(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var list = names.ToArray();
        if (list.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("A target module name cannot be empty.", nameof(names));
        }
        return new PeftTargetModules(list, null);
    }

    /// <summary>The string form: <c>"all-linear"</c> or a regular expression matched against whole module paths.</summary>
    /// <exception cref="ArgumentException">The pattern is not a regular expression .NET can compile.</exception>
    public static PeftTargetModules FromPattern(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return new PeftTargetModules(null, pattern);
    }

    /// <summary>
    /// Whether PEFT would select the module at <paramref name="modulePath"/> (e.g. <c>transformer.h.0.attn.q_proj</c>).
    /// <c>"all-linear"</c> selects every path: the caller offers only Linear layers.
    /// </summary>
    /// <exception cref="RegexMatchTimeoutException">A backtracking pattern took too long on this path.</exception>
    public bool Matches(string modulePath)
    {
        ArgumentNullException.ThrowIfNull(modulePath);
        if (Names is not null)
        {
            return Names.Any(name => NameMatches(name, modulePath));
        }
        return IsAllLinear || _regex!.IsMatch(modulePath);
    }

    /// <summary>PEFT's rule for one list entry: the whole path, or its tail after a dot.</summary>
    public static bool NameMatches(string name, string modulePath) =>
        modulePath == name || modulePath.EndsWith("." + name, StringComparison.Ordinal);

    public bool Equals(PeftTargetModules? other) =>
        other is not null && Pattern == other.Pattern &&
        (Names is null ? other.Names is null : other.Names is not null && Names.SequenceEqual(other.Names));

    public override int GetHashCode() =>
        Names is null ? HashCode.Combine(Pattern) : Names.Aggregate(0, (hash, name) => HashCode.Combine(hash, name));

    public override string ToString() =>
        Names is null ? $"'{Pattern}'" : "[" + string.Join(", ", Names.Select(n => $"'{n}'")) + "]";

    // re.fullmatch: the whole path must match, whichever alternative gets there.
    private static Regex Compile(string pattern) => PeftRegex.Compile(pattern, fullMatch: true);
}
