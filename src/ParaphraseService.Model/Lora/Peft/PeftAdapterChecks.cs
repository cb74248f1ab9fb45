using System.Text.Json;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// Whether this service can run a PEFT LoRA adapter on a base model: the config's features, which base modules
/// target_modules selects, and whether the stored tensors are exactly lora_A [r, in] and lora_B [out, r] of those
/// modules. Each check appends readable problems to a list, so every problem is reported at once.
/// </summary>
internal static class PeftAdapterChecks
{
    public const int MaxRank = 256;

    /// <summary>How many names a message lists before "and N more".</summary>
    private const int Shown = 6;

    private static readonly HashSet<string> s_plainInits = new(StringComparer.OrdinalIgnoreCase)
    {
        PeftLoraConfig.InitTrue, PeftLoraConfig.InitFalse, "gaussian", "eva", "orthogonal", "mica",
    };

    /// <summary>Fields that, when set, make the adapter something other than plain LoRA, and what they are.</summary>
    private static readonly (string Field, string What)[] s_unsupportedFields =
    [
        ("layers_to_transform", "adapting only some layers"),
        ("layers_pattern", "adapting only some layers"),
        ("rank_pattern", "a different rank for some modules"),
        ("alpha_pattern", "a different alpha for some modules"),
        ("lora_bias", "a bias on lora_B"),
        ("use_qalora", "QA-LoRA (pooled inputs)"),
        ("alora_invocation_tokens", "Activated LoRA"),
        ("layer_replication", "layer replication"),
        ("trainable_token_indices", "trainable token embeddings"),
        ("target_parameters", "LoRA on parameters"),
        ("velora_config", "the VeLoRA variant"),
        ("use_bdlora", "block-diagonal LoRA"),
        ("arrow_config", "Arrow routing"),
        ("kasa_config", "the KaSA variant"),
        ("monteclora_config", "the MonteCLoRA variant"),
    ];

    /// <summary>Config checks that need no base model.</summary>
    public static void CheckConfig(PeftLoraConfig config, List<string> problems)
    {
        if (config.PeftType is null)
            problems.Add("peft_type is missing (PEFT writes \"LORA\")");
        else if (config.PeftType != "LORA")
            problems.Add($"peft_type is '{config.PeftType}': only LoRA adapters (\"LORA\") are supported");
        if (config.TaskType is not null && config.TaskType != "CAUSAL_LM")
            problems.Add($"task_type is '{config.TaskType}': only causal language model adapters (\"CAUSAL_LM\", or none) fit text generation");
        if (config.R is < 1 or > MaxRank)
            problems.Add($"r is {config.R}: the rank must be between 1 and {MaxRank}");
        if (config.LoraAlpha <= 0)
            problems.Add($"lora_alpha is {config.LoraAlpha}: it must be positive");
        if (config.LoraDropout is < 0 or > 1)
            problems.Add($"lora_dropout is {config.LoraDropout}: it must be between 0 and 1");
        if (config.Bias != "none")
            problems.Add($"bias is '{config.Bias}': PEFT then trains and saves the base model's biases with the adapter, " +
                "which is not supported (only \"none\")");
        if (config.UseDora)
            problems.Add("use_dora is true: DoRA adapters (a magnitude vector per module) are not supported, only plain LoRA");
        if (config.ModulesToSave is { Count: > 0 } saved)
            problems.Add($"modules_to_save is [{string.Join(", ", saved)}]: adapters that carry fully trained copies of " +
                "base modules are not supported");
        CheckInit(config.InitLoraWeights, problems);
        foreach (var (field, what) in s_unsupportedFields)
        {
            if (config.OtherFields.TryGetValue(field, out var value) && IsSet(value))
                problems.Add($"{field} is {JsonFields.Describe(value)}: {what} is not supported");
        }
    }

    /// <summary>
    /// The base modules the config adapts (PEFT's matching: target_modules, or the architecture's default, minus
    /// exclude_modules). Names and patterns that select nothing are problems.
    /// </summary>
    public static SortedSet<string> ResolveTargets(PeftLoraConfig config, AdapterTarget target, List<string> problems)
    {
        var selected = new SortedSet<string>(StringComparer.Ordinal);
        var example = target.Modules.Keys.FirstOrDefault() ?? "transformer.h.0.attn.q_proj";
        var targets = config.TargetModules;
        if (targets is null)
        {
            if (target.DefaultTargetModules is not { } defaults)
            {
                problems.Add($"target_modules is missing and PEFT has no default for architecture '{target.Architecture}'");
                return selected;
            }
            targets = PeftTargetModules.FromNames(defaults);
        }

        if (targets.IsAllLinear)
        {
            selected.UnionWith(target.Modules.Keys);
        }
        else if (targets.Names is { } names)
        {
            if (names.Count == 0)
            {
                problems.Add("target_modules is an empty list: the adapter adapts nothing");
                return selected;
            }
            var unknown = names.Where(n => !target.Modules.Keys.Any(m => PeftTargetModules.NameMatches(n, m))).Distinct().ToList();
            if (unknown.Count > 0)
                problems.Add($"target_modules has names that match no adaptable Linear module of the {target.Architecture} base: " +
                    $"{Quoted(unknown)} (a name selects the modules whose path equals it or ends with '.' + name, " +
                    $"e.g. '{example.Split('.')[^1]}' or '{example}')");
            selected.UnionWith(target.Modules.Keys.Where(targets.Matches));
        }
        else
        {
            if (!TryMatch(targets, target.Modules.Keys, "target_modules", problems, out var matched))
                return selected;
            if (matched.Count == 0)
                problems.Add($"target_modules regex '{targets.Pattern}' matches no adaptable Linear module of the {target.Architecture} base " +
                    $"(it must match a whole module path, such as '{example}')");
            selected.UnionWith(matched);
        }

        if (config.ExcludeModules is { } excludes && selected.Count > 0)
        {
            if (excludes.IsAllLinear)
                problems.Add("exclude_modules is 'all-linear', which PEFT does not expand there: it would be a regex matching nothing");
            else if (TryMatch(excludes, selected, "exclude_modules", problems, out var excluded))
            {
                selected.ExceptWith(excluded);
                if (selected.Count == 0)
                    problems.Add("exclude_modules excludes every module target_modules selects");
            }
        }
        return selected;
    }

    /// <summary>
    /// Compares the stored tensors with the modules the config selects. Returns, for each selected module, the keys of
    /// its lora_A and lora_B; complete only when no problem was added.
    /// </summary>
    public static SortedDictionary<string, (string A, string B)> CheckTensors(PeftLoraConfig config, AdapterTarget target,
        IReadOnlySet<string> selected, IReadOnlyDictionary<string, CheckpointTensorInfo> tensors, List<string> problems)
    {
        var factors = new SortedDictionary<string, (string? A, string? B)>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        foreach (var key in tensors.Keys)
        {
            if (!PeftStateDictKey.TryParse(key, out var parsed))
            {
                unexpected.Add(PeftStateDictKey.Explain(key) is { } why ? $"{key} ({why})" : key);
                continue;
            }
            factors.TryGetValue(parsed.Module, out var pair);
            var existing = parsed.IsA ? pair.A : pair.B;
            if (existing is not null)
            {
                problems.Add($"{parsed.Module}: {parsed.Factor} is stored twice, as {existing} and {key}");
                continue;
            }
            factors[parsed.Module] = parsed.IsA ? (key, pair.B) : (pair.A, key);
        }
        if (unexpected.Count > 0)
            problems.Add($"unexpected tensors that are not lora_A/lora_B weights: {List(unexpected)}");

        CheckModulePaths(target, selected, factors.Keys, problems);

        var missing = new List<string>();
        var notFloat = new List<string>();
        var notMatrix = new List<string>();
        var rank = new List<string>();
        var size = new List<string>();
        var plan = new SortedDictionary<string, (string A, string B)>(StringComparer.Ordinal);
        foreach (var module in selected)
        {
            factors.TryGetValue(module, out var pair);
            if (pair.A is null) missing.Add(PeftStateDictKey.Standard(module, isA: true));
            if (pair.B is null) missing.Add(PeftStateDictKey.Standard(module, isA: false));
            if (pair.A is null || pair.B is null)
                continue;
            plan[module] = (pair.A, pair.B);
            var (fanIn, fanOut) = target.Modules[module];
            var a = tensors[pair.A];
            var b = tensors[pair.B];
            foreach (var info in (CheckpointTensorInfo[])[a, b])
            {
                if (!IsFloatingPoint(info.DType)) notFloat.Add($"{info.Name} ({info.DType})");
                if (info.Shape.Length != 2) notMatrix.Add($"{info.Name} {Shape(info.Shape)}");
            }
            if (a.Shape.Length != 2 || b.Shape.Length != 2)
                continue;
            if (a.Shape[0] != config.R) rank.Add($"{a.Name} is {Shape(a.Shape)} (lora_A needs r rows)");
            if (b.Shape[1] != config.R) rank.Add($"{b.Name} is {Shape(b.Shape)} (lora_B needs r columns)");
            if (a.Shape[1] != fanIn) size.Add($"{a.Name} is {Shape(a.Shape)} but the layer takes {fanIn} inputs");
            if (b.Shape[0] != fanOut) size.Add($"{b.Name} is {Shape(b.Shape)} but the layer has {fanOut} outputs");
        }
        if (missing.Count > 0)
            problems.Add($"missing tensors for modules target_modules selects: {List(missing)}");
        if (notFloat.Count > 0)
            problems.Add($"tensors that are not floating point: {List(notFloat)}");
        if (notMatrix.Count > 0)
            problems.Add($"tensors that are not matrices: {List(notMatrix)}");
        if (rank.Count > 0)
            problems.Add($"shapes that do not match r = {config.R}: {List(rank)}");
        if (size.Count > 0)
            problems.Add($"shapes that do not fit the {target.Architecture} base (hidden size {target.HiddenSize}): {List(size)}; " +
                "the adapter was made for a model of another size");
        return plan;
    }

    /// <summary>Stored modules the base lacks (another architecture, a deeper model) or that the config does not select.</summary>
    private static void CheckModulePaths(AdapterTarget target, IReadOnlySet<string> selected, IEnumerable<string> stored, List<string> problems)
    {
        var templates = target.Modules.Keys.Select(m => LayerTemplate(m).Template).ToHashSet(StringComparer.Ordinal);
        var foreign = new List<string>();
        var deeper = new List<string>();
        var unselected = new List<string>();
        var deepest = -1;
        var storedCount = 0;
        foreach (var module in stored)
        {
            storedCount++;
            if (target.Modules.ContainsKey(module))
            {
                if (!selected.Contains(module)) unselected.Add(module);
                continue;
            }
            var (template, layer) = LayerTemplate(module);
            if (layer >= target.LayerCount && templates.Contains(template))
            {
                deeper.Add(module);
                deepest = Math.Max(deepest, layer);
            }
            else
            {
                foreign.Add(module);
            }
        }
        var baseName = $"the {target.Architecture} base (hidden size {target.HiddenSize}, {target.LayerCount} layers)";
        if (foreign.Count > 0 && foreign.Count == storedCount)
            problems.Add($"none of the adapter's modules is an adaptable Linear layer of {baseName}: {List(foreign)}; " +
                "the adapter was made for another architecture");
        else if (foreign.Count > 0)
            problems.Add($"LoRA weights for modules that are not adaptable Linear layers of {baseName}: {List(foreign)}");
        if (deeper.Count > 0)
            problems.Add($"LoRA weights for layers beyond the base's {target.LayerCount} (0 to {target.LayerCount - 1}): {List(deeper)}; " +
                $"the adapter was made for a model with at least {deepest + 1} layers");
        if (unselected.Count > 0)
            problems.Add($"LoRA weights for modules target_modules does not select: {List(unselected)}");
    }

    /// <summary>A module path with its first numeric segment (the layer index) replaced, and that index (-1 if none).</summary>
    private static (string Template, int Layer) LayerTemplate(string module)
    {
        var segments = module.Split('.');
        for (var i = 0; i < segments.Length; i++)
        {
            if (segments[i].Length > 0 && segments[i].All(char.IsAsciiDigit))
            {
                var layer = int.TryParse(segments[i], out var index) ? index : int.MaxValue;
                segments[i] = "#";
                return (string.Join('.', segments), layer);
            }
        }
        return (module, -1);
    }

    private static bool TryMatch(PeftTargetModules targets, IEnumerable<string> modules, string field, List<string> problems,
        out List<string> matched)
    {
        try
        {
            matched = modules.Where(targets.Matches).ToList();
            return true;
        }
        catch (RegexMatchTimeoutException)
        {
            problems.Add($"{field} regex '{targets.Pattern}' takes too long to match module paths");
            matched = [];
            return false;
        }
    }

    private static void CheckInit(string init, List<string> problems)
    {
        if (s_plainInits.Contains(init))
            return;
        var lower = init.ToLowerInvariant();
        if (lower == "loftq")
            problems.Add("init_lora_weights is 'loftq': LoftQ replaces the base model's weights by their quantized " +
                "approximation, so the adapter only works on that changed base");
        else if (lower.StartsWith("pissa", StringComparison.Ordinal) || lower is "olora" or "corda" or "lora_ga")
            problems.Add($"init_lora_weights is '{init}': that initialisation changes the base model's weights, so the adapter " +
                "only works on that changed base; convert it to a plain LoRA first (PEFT: save_pretrained(..., " +
                "path_initial_model_for_weight_conversion=...))");
        else
            problems.Add($"init_lora_weights is '{init}', which PEFT does not define");
    }

    /// <summary>PEFT's notion of an option being used: not null, false, 0-length or empty.</summary>
    private static bool IsSet(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.False or JsonValueKind.Undefined => false,
        JsonValueKind.Array => value.GetArrayLength() > 0,
        JsonValueKind.Object => value.EnumerateObject().Any(),
        JsonValueKind.String => value.GetString()!.Length > 0,
        _ => true,
    };

    public static bool IsFloatingPoint(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64;

    public static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    public static string List(IReadOnlyCollection<string> items) =>
        string.Join(", ", items.Take(Shown)) + (items.Count > Shown ? $" and {items.Count - Shown} more" : "");

    private static string Quoted(IReadOnlyCollection<string> items) => List(items.Select(i => $"'{i}'").ToList());
}
