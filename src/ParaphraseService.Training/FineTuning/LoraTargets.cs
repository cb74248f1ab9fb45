using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Training.FineTuning;

/// <summary>
/// Checks the target module names of a fine-tune against the base it will train on, as PEFT matches them: a name
/// selects the modules whose path equals it or ends with "." + name (<c>q_proj</c>, <c>attn.q_proj</c>,
/// <c>transformer.h.0.attn.q_proj</c>); <c>all-linear</c> selects every adaptable module.
/// </summary>
public static class LoraTargets
{
    /// <summary>The most names a fine-tune may list (a GPT-J-6B has 168 adaptable modules, 6 names cover them).</summary>
    public const int MaxNames = 256;

    private const int MaxQuoted = 10;

    /// <summary>Whether <paramref name="names"/> asks for every adaptable module (PEFT's <c>all-linear</c>, in any case).</summary>
    public static bool IsAllLinear(IReadOnlyList<string>? names) =>
        names is not null && names.Any(n => string.Equals(n, PeftTargetModules.AllLinearShorthand, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Why <paramref name="names"/> cannot be trained on <paramref name="target"/> (empty, too many, empty names, or
    /// names that select no module: those are named with the valid names), or null when every name selects a module.
    /// </summary>
    public static string? Problem(IReadOnlyList<string> names, AdapterTarget target)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(target);
        if (names.Count == 0)
            return $"name at least one module, or {PeftTargetModules.AllLinearShorthand}";
        if (names.Count > MaxNames)
            return $"at most {MaxNames} module names (got {names.Count})";
        if (names.Any(string.IsNullOrWhiteSpace))
            return "module names must not be empty";
        if (IsAllLinear(names))
            return null;
        var unknown = names.Where(n => !target.Modules.Keys.Any(m => PeftTargetModules.NameMatches(n, m))).Distinct(StringComparer.Ordinal).ToList();
        if (unknown.Count == 0)
            return null;
        var quoted = string.Join(", ", unknown.Take(MaxQuoted).Select(n => $"'{(n.Length <= 40 ? n : n[..40] + "...")}'"));
        var more = unknown.Count > MaxQuoted ? $" and {unknown.Count - MaxQuoted} more" : "";
        return $"{quoted}{more} match{(unknown.Count == 1 ? "es" : "")} no module of the {target.Architecture} base; valid names: " +
            $"{string.Join(", ", ValidNames(target))} (or a longer path ending in one, such as '{target.Modules.Keys.FirstOrDefault()}'), " +
            $"or {PeftTargetModules.AllLinearShorthand}";
    }

    /// <summary>The short names of the base's adaptable modules (the last part of their paths), each once.</summary>
    public static IReadOnlyList<string> ValidNames(AdapterTarget target) =>
        target.Modules.Keys.Select(path => path[(path.LastIndexOf('.') + 1)..]).Distinct(StringComparer.Ordinal).ToList();
}
