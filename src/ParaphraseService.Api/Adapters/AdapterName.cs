using System.Text.RegularExpressions;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// Adapter names: 1-64 characters of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit,
/// never "..". A name is also a folder name in the store, so these rules keep every name inside it.
/// </summary>
public static partial class AdapterName
{
    public const string Pattern = "^[a-z0-9][a-z0-9._-]{0,63}$";
    public const int MaxLength = 64;

    /// <summary>Null when <paramref name="name"/> is a valid adapter name, else why not, in words.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "an adapter name is required";
        }
        if (name.Length > MaxLength)
        {
            return $"the name is {name.Length} characters long; at most {MaxLength} are allowed";
        }
        if (name.Contains("..", StringComparison.Ordinal))
        {
            return "the name must not contain '..'";
        }
        if (name.IndexOfAny(['/', '\\']) >= 0)
        {
            return "the name must not contain '/' or '\\'";
        }
        if (name.Any(char.IsUpper))
        {
            return $"the name '{name}' has uppercase letters; names are lowercase";
        }
        if (!ValidName().IsMatch(name))
        {
            return $"the name must match {Pattern}: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit";
        }
        return null;
    }

    public static bool IsValid(string? name) => Problem(name) is null;

    // \z, not $: $ also matches before a final newline.
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex ValidName();
}
