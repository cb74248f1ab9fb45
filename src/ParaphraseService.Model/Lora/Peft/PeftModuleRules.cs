using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// The per-module fields of a PEFT LoRA config, read from <see cref="PeftLoraConfig.OtherFields"/> (where they stay as
/// written, so a saved config keeps PEFT's form) and applied with PEFT's own rules:
/// <list type="bullet">
/// <item><c>layers_to_transform</c> (an int or a list) with <c>layers_pattern</c> (a string or a list): a module that a
/// list of target_modules selects by a name suffix is adapted only if its layer index is listed. PEFT's
/// <c>check_target_module_exists</c> takes that index from <c>re.match(rf".*?\.{pattern}\.(\d+)\.", path)</c>, or
/// without a pattern from <c>re.match(r".*?\.[^.]*\.(\d+)\.", path)</c>; a module listed by its full path is never
/// filtered.</item>
/// <item><c>rank_pattern</c> / <c>alpha_pattern</c>: PEFT's <c>get_pattern_key</c> gives a module the value of the first
/// key (in file order) for which <c>re.match(rf"(.*\.)?({key})$", path)</c> matches (PEFT 0.15 and later); else a key
/// equal to the path; else r / lora_alpha. Earlier PEFT matched keys otherwise (<see cref="LegacyFor"/>), and a config
/// written before 0.18 does not say which PEFT wrote it.</item>
/// </list>
/// module-rules.json (made by PEFT's own functions, see make_module_rules.py) pins these rules in the tests.
/// </summary>
internal sealed class PeftModuleRules
{
    private const string LayersField = "layers_to_transform", LayersPatternField = "layers_pattern";
    private const string RankField = "rank_pattern", AlphaField = "alpha_pattern";
    private const string VersionField = "peft_version";

    private static readonly Regex s_anyLayer = PeftRegex.Compile(@".*?\.[^.]*\.(\d+)\.", fullMatch: false);

    private readonly List<(string Pattern, Regex Regex)>? _layerPatterns;
    private readonly List<PatternEntry<int>> _ranks;
    private readonly List<PatternEntry<double>> _alphas;
    private readonly HashSet<string> _reported = new(StringComparer.Ordinal);

    private PeftModuleRules(PeftLoraConfig config, List<long>? layers, List<(string, Regex)>? layerPatterns,
        List<PatternEntry<int>> ranks, List<PatternEntry<double>> alphas)
    {
        WrittenBy = config.OtherFields.TryGetValue(VersionField, out var version) && version.ValueKind == JsonValueKind.String
            ? version.GetString() : null;
        R = config.R;
        Alpha = config.LoraAlpha;
        Layers = layers;
        _layerPatterns = layerPatterns;
        _ranks = ranks;
        _alphas = alphas;
    }

    /// <summary>The layers a list of target_modules is restricted to; null when every layer is adapted.</summary>
    public IReadOnlyList<long>? Layers { get; }

    /// <summary>The config's <c>peft_version</c> (PEFT 0.18 and later write it); null when absent.</summary>
    public string? WrittenBy { get; }

    /// <summary>
    /// Whether the config says it was written by PEFT 0.15 or later, whose pattern rules <see cref="For"/> follows; a
    /// config without <c>peft_version</c> may come from any PEFT.
    /// </summary>
    public bool WrittenSincePatternRules =>
        WrittenBy is { } version && Version.TryParse(string.Join('.', version.Split('.').Take(2)), out var parsed) &&
        parsed >= new Version(0, 15);

    /// <summary>Whether rank_pattern or alpha_pattern has any key.</summary>
    public bool HasPatterns => _ranks.Count > 0 || _alphas.Count > 0;

    /// <summary>The rank_pattern keys, in file order.</summary>
    public IEnumerable<string> RankKeys => _ranks.Select(e => e.Key);

    /// <summary>The alpha_pattern keys, in file order.</summary>
    public IEnumerable<string> AlphaKeys => _alphas.Select(e => e.Key);

    private int R { get; }
    private double Alpha { get; }

    /// <summary>
    /// Reads the four fields, recording a problem for each value PEFT would refuse or fail on, or that this service
    /// refuses as it refuses r and lora_alpha (a rank outside 1 to <see cref="PeftAdapterChecks.MaxRank"/>, an alpha
    /// that is not positive). Also LoraConfig's own checks: layers_to_transform and layers_pattern cannot go with a
    /// string target_modules (a regex, or "all-linear"), and layers_pattern needs layers_to_transform.
    /// </summary>
    public static PeftModuleRules Read(PeftLoraConfig config, List<string> problems)
    {
        var fields = config.OtherFields;
        var layersGiven = fields.TryGetValue(LayersField, out var layersValue) && layersValue.ValueKind != JsonValueKind.Null;
        var patternGiven = fields.TryGetValue(LayersPatternField, out var patternValue) && patternValue.ValueKind != JsonValueKind.Null;
        var layers = layersGiven ? ReadLayers(layersValue, problems) : null;
        var patterns = patternGiven ? ReadLayerPatterns(patternValue, problems) : null;

        // LoraConfig.__post_init__: "`layers_to_transform` cannot be used when `target_modules` is a str." (also for
        // "all-linear", which is a str there), and the same for layers_pattern; even an empty value counts.
        if (config.TargetModules?.Pattern is { } pattern)
        {
            foreach (var (given, field, value) in (ReadOnlySpan<(bool, string, JsonElement)>)[(layersGiven, LayersField, layersValue), (patternGiven, LayersPatternField, patternValue)])
            {
                if (given)
                    problems.Add($"{field} is {JsonFields.Describe(value)}, but target_modules is the string '{pattern}': " +
                        $"PEFT restricts layers only for a list of module names and refuses {field} with a string");
            }
        }
        // "When `layers_pattern` is specified, `layers_to_transform` must also be specified."
        if (patterns is { Count: > 0 } && !layersGiven)
            problems.Add($"layers_pattern is {JsonFields.Describe(patternValue)} without layers_to_transform: " +
                "PEFT refuses a layer pattern that no layer list goes with");

        var ranks = ReadPattern(fields, RankField, problems, "a rank", (JsonElement value, out int rank) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out rank)
                ? rank is >= 1 and <= PeftAdapterChecks.MaxRank ? null : $"{rank}: the rank must be between 1 and {PeftAdapterChecks.MaxRank}"
                : Fail(out rank, $"{JsonFields.Describe(value)}, not an integer rank"));
        var alphas = ReadPattern(fields, AlphaField, problems, "an alpha", (JsonElement value, out double alpha) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out alpha) && double.IsFinite(alpha)
                ? alpha > 0 ? null : $"{JsonFields.Describe(value)}: it must be positive"
                : Fail(out alpha, $"{JsonFields.Describe(value)}, not a number"));

        // An empty list or pattern means "not used" to PEFT (is_using_layer_indexes; "empty layers_pattern means any").
        return new PeftModuleRules(config, layers is { Count: > 0 } ? layers : null, patterns is { Count: > 0 } ? patterns : null, ranks, alphas);
    }

    /// <summary>
    /// Whether PEFT's layer filter keeps a module that target_modules selected by a name suffix. Adds a problem (and
    /// answers false) where PEFT would fail: a layers_pattern whose first group is not the layer index.
    /// </summary>
    /// <exception cref="RegexMatchTimeoutException">A backtracking layers_pattern took too long.</exception>
    public bool KeepsLayer(string modulePath, List<string> problems)
    {
        if (Layers is null)
            return true;
        Match? found = null;
        string? pattern = null;
        foreach (var (text, regex) in _layerPatterns ?? [(null!, s_anyLayer)])
        {
            var match = regex.Match(modulePath);
            if (match.Success)
            {
                (found, pattern) = (match, text);
                break;
            }
        }
        if (found is null)
            return false;
        // layer_index = int(layer_index.group(1)): the pattern's own first group, if it has one, comes first.
        var group = found.Groups[1];
        // An index too large for a long is in no list either.
        if (group.Success && group.Value.Length > 0 && group.Value.All(char.IsAsciiDigit))
            return long.TryParse(group.ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var layer) && Layers.Contains(layer);
        // Once per pattern: every module of every layer would say the same. (The default pattern always captures digits.)
        if (_reported.Add(pattern!))
            problems.Add($"layers_pattern '{pattern}' matches '{modulePath}' but its first group captures " +
                $"{(group.Success ? $"'{group.Value}'" : "nothing")}, not the layer index: PEFT fails on it (it reads group 1 as the index)");
        return false;
    }

    /// <summary>A module's r and alpha, and the keys that gave them (null: the config's r / lora_alpha).</summary>
    /// <exception cref="RegexMatchTimeoutException">A backtracking key took too long.</exception>
    public (int R, string? RankKey, double Alpha, string? AlphaKey) For(string modulePath)
    {
        var rank = Find(_ranks, modulePath);
        var alpha = Find(_alphas, modulePath);
        return (rank?.Value ?? R, rank?.Key, alpha?.Value ?? Alpha, alpha?.Key);
    }

    /// <summary>
    /// A module's r and alpha as the PEFT versions before 0.15 gave them, which matched a key with
    /// <c>re.match(rf".*\.{key}$", path)</c> (so a key matching from the path's start, such as <c>^transformer\..*</c>,
    /// never matched, and an alternation <c>q_proj|v_proj</c> left its second branch anchored at the start). PEFT 0.6 to
    /// 0.13 (LoraModel._create_and_replace) also looked both values up under one key:
    /// <code>
    /// pattern_keys = list(chain(lora_config.rank_pattern.keys(), lora_config.alpha_pattern.keys()))
    /// target_name_key = next(filter(lambda key: re.match(rf".*\.{key}$", current_key), pattern_keys), current_key)
    /// r = lora_config.rank_pattern.get(target_name_key, lora_config.r)
    /// alpha = lora_config.alpha_pattern.get(target_name_key, lora_config.lora_alpha)
    /// </code>
    /// PEFT 0.14 (get_pattern_key) looked each up on its own, with the same regex. Empty when a key is no regex in that
    /// form (those versions failed on it).
    /// </summary>
    /// <exception cref="RegexMatchTimeoutException">A backtracking key took too long.</exception>
    public IReadOnlyList<(string Versions, int R, double Alpha)> LegacyFor(string modulePath)
    {
        if (_ranks.Any(e => e.Legacy is null) || _alphas.Any(e => e.Legacy is null))
            return [];
        var chained = _ranks.Select(e => (e.Key, e.Legacy)).Concat(_alphas.Select(e => (e.Key, e.Legacy)))
            .FirstOrDefault(e => e.Legacy!.IsMatch(modulePath)).Key ?? modulePath;
        var rankKey = _ranks.FirstOrDefault(e => e.Legacy!.IsMatch(modulePath))?.Key ?? modulePath;
        var alphaKey = _alphas.FirstOrDefault(e => e.Legacy!.IsMatch(modulePath))?.Key ?? modulePath;
        return
        [
            ("0.6 to 0.13", Lookup(_ranks, chained) ?? R, Lookup(_alphas, chained) ?? Alpha),
            ("0.14", Lookup(_ranks, rankKey) ?? R, Lookup(_alphas, alphaKey) ?? Alpha),
        ];
    }

    // lora_config.rank_pattern.get(key): an exact key.
    private static T? Lookup<T>(List<PatternEntry<T>> entries, string key) where T : struct =>
        entries.FirstOrDefault(e => e.Key == key)?.Value;

    private static PatternEntry<T>? Find<T>(List<PatternEntry<T>> entries, string modulePath) where T : struct =>
        // get_pattern_key: the first key whose regex matches; failing that, the module's own path, if it is a key.
        entries.FirstOrDefault(e => e.Regex.IsMatch(modulePath)) ?? entries.FirstOrDefault(e => e.Key == modulePath);

    private static List<long>? ReadLayers(JsonElement value, List<string> problems)
    {
        // An int means that one layer; a bool would be an int to Python (True == 1), which no one means.
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var single))
            return [single];
        if (value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out _)))
            return value.EnumerateArray().Select(v => v.GetInt64()).ToList();
        problems.Add($"{LayersField} must be a layer index or a list of layer indexes, not {JsonFields.Describe(value)}");
        return null;
    }

    private static List<(string, Regex)>? ReadLayerPatterns(JsonElement value, List<string> problems)
    {
        List<string> texts;
        if (value.ValueKind == JsonValueKind.String)
            texts = value.GetString()!.Length == 0 ? [] : [value.GetString()!];
        else if (value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String))
            texts = value.EnumerateArray().Select(v => v.GetString()!).ToList();
        else
        {
            problems.Add($"{LayersPatternField} must be a string or a list of strings, not {JsonFields.Describe(value)}");
            return null;
        }
        var patterns = new List<(string, Regex)>();
        foreach (var text in texts)
        {
            try
            {
                patterns.Add((text, PeftRegex.Compile($@".*?\.{text}\.(\d+)\.", fullMatch: false)));
            }
            catch (ArgumentException e)
            {
                problems.Add($"{LayersPatternField} '{text}' does not make a valid regular expression: {e.Message}");
            }
        }
        return patterns;
    }

    private delegate string? ValueReader<T>(JsonElement value, out T result);

    private static List<PatternEntry<T>> ReadPattern<T>(IReadOnlyDictionary<string, JsonElement> fields, string field,
        List<string> problems, string what, ValueReader<T> read) where T : struct
    {
        var entries = new List<PatternEntry<T>>();
        if (!fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
            return entries;
        if (value.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"{field} must be an object mapping module name patterns to {what}, not {JsonFields.Describe(value)}");
            return entries;
        }
        // Python's json keeps a repeated key where it first appeared, with its last value; so do we.
        var latest = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var property in value.EnumerateObject())
        {
            if (latest.TryAdd(property.Name, property.Value))
                order.Add(property.Name);
            else
                latest[property.Name] = property.Value;
        }
        foreach (var key in order)
        {
            if (read(latest[key], out var result) is { } problem)
            {
                problems.Add($"{field} gives '{key}' {problem}");
                continue;
            }
            try
            {
                entries.Add(new PatternEntry<T>(key, result, PeftRegex.Compile($@"(.*\.)?({key})$", fullMatch: false), Legacy(key)));
            }
            catch (ArgumentException e)
            {
                problems.Add($"{field} key '{key}' does not make a valid regular expression: {e.Message}");
            }
        }
        return entries;
    }

    private static string Fail<T>(out T result, string problem)
    {
        result = default!;
        return problem;
    }

    /// <summary>The key as PEFT before 0.15 matched it; null when that is no regex (those versions failed on it).</summary>
    private static Regex? Legacy(string key)
    {
        try
        {
            return PeftRegex.Compile($@".*\.{key}$", fullMatch: false);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private sealed record PatternEntry<T>(string Key, T Value, Regex Regex, Regex? Legacy) where T : struct;
}
