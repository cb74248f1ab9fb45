using System.Globalization;
using System.Numerics;
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

    /// <summary>Initialisations after which a module's factors multiply to a nonzero (random) delta.</summary>
    private static readonly HashSet<string> s_randomInits = new(StringComparer.OrdinalIgnoreCase) { PeftLoraConfig.InitFalse, "orthogonal" };

    /// <summary>Fields that, when set, make the adapter something other than plain LoRA, and what they are.</summary>
    private static readonly (string Field, string What)[] s_unsupportedFields =
    [
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
        // "all" and "lora_only" train the base's biases and save them beside the factors: those tensors are refused by
        // name (CheckTensors). Where the file holds none (GPT-J's attention projections have no bias), the adapter is
        // exactly its factors, as PEFT loads it.
        if (config.Bias is not ("none" or "all" or "lora_only"))
            problems.Add($"bias is '{config.Bias}', which PEFT does not define (\"none\", \"all\" or \"lora_only\")");
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
    /// The base modules the config adapts (PEFT's matching: target_modules, or the architecture's default, restricted
    /// to layers_to_transform, minus exclude_modules). Names and patterns that select nothing are problems.
    /// </summary>
    public static SortedSet<string> ResolveTargets(PeftLoraConfig config, AdapterTarget target, PeftModuleRules rules,
        List<string> problems, List<string> warnings)
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
            {
                var matchNothing = $"target_modules has names that match no adaptable Linear module of the {target.Architecture} base: " +
                    $"{Quoted(unknown)} (a name selects the modules whose path equals it or ends with '.' + name, " +
                    $"e.g. '{example.Split('.')[^1]}' or '{example}')";
                // PEFT refuses a list only when none of its names matches ("Target modules ... not found in the base
                // model"); lists copied between architectures (LLaMA's o_proj, gate_proj, ... beside q_proj and v_proj)
                // load, adapting what matches.
                if (unknown.Count == names.Distinct().Count())
                    problems.Add(matchNothing);
                else
                    warnings.Add(matchNothing + "; they adapt nothing");
            }
            selected.UnionWith(target.Modules.Keys.Where(targets.Matches));
            if (selected.Count > 0 && !FilterLayers(rules, target, names, selected, problems, warnings))
                return selected;
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
    /// PEFT's layers_to_transform filter on a list of target_modules: a module selected by a name suffix stays only if
    /// its layer is listed; one listed by its full path always stays. False when nothing is left (a problem, as PEFT
    /// raises "Target modules ... not found in the base model").
    /// </summary>
    private static bool FilterLayers(PeftModuleRules rules, AdapterTarget target, IReadOnlyList<string> names,
        SortedSet<string> selected, List<string> problems, List<string> warnings)
    {
        if (rules.Layers is not { } layers)
            return true;
        var absent = layers.Where(l => l < 0 || l >= target.LayerCount).Distinct().ToList();
        if (absent.Count > 0)
            warnings.Add($"layers_to_transform lists layers the {target.Architecture} base does not have " +
                $"(it has {target.LayerCount}: 0 to {target.LayerCount - 1}): {string.Join(", ", absent)}; they adapt nothing");
        var failures = problems.Count;
        try
        {
            selected.RemoveWhere(m => !names.Contains(m) && !rules.KeepsLayer(m, problems));
        }
        catch (RegexMatchTimeoutException)
        {
            problems.Add("layers_pattern takes too long to match module paths");
            return false;
        }
        if (problems.Count > failures)
            return false;
        if (selected.Count == 0)
        {
            var example = target.Modules.Keys.First();
            problems.Add($"target_modules with layers_to_transform [{string.Join(", ", layers)}] selects no module of the " +
                $"{target.Architecture} base: PEFT reads a module's layer as the number after '.<layers_pattern>.' " +
                $"(or after the first '.<name>.'), as in '{example}'");
            return false;
        }
        return true;
    }

    /// <summary>
    /// Each selected module's r and alpha (rank_pattern, alpha_pattern) and so its scaling. Pattern keys that decide no
    /// module are worth a warning: they change nothing, which is rarely what their author meant.
    /// </summary>
    public static SortedDictionary<string, SelectedModule> Settle(PeftLoraConfig config, PeftModuleRules rules,
        IEnumerable<string> selected, List<string> problems, List<string> warnings)
    {
        var settled = new SortedDictionary<string, SelectedModule>(StringComparer.Ordinal);
        try
        {
            foreach (var module in selected)
            {
                var (r, rankKey, alpha, alphaKey) = rules.For(module);
                settled[module] = new SelectedModule(r, rankKey, alpha, alphaKey, config.ScalingOf(r, alpha));
            }
        }
        catch (RegexMatchTimeoutException)
        {
            problems.Add("a rank_pattern or alpha_pattern key takes too long to match module paths");
            return settled;
        }
        if (settled.Count == 0)
            return settled;
        foreach (var (field, keys, used) in (ReadOnlySpan<(string, IEnumerable<string>, HashSet<string?>)>)[
            ("rank_pattern", rules.RankKeys, settled.Values.Select(m => m.RankKey).ToHashSet()),
            ("alpha_pattern", rules.AlphaKeys, settled.Values.Select(m => m.AlphaKey).ToHashSet())])
        {
            var unused = keys.Where(k => !used.Contains(k)).Select(k => $"'{k}'").ToList();
            if (unused.Count > 0)
                warnings.Add($"{field} keys that decide no adapted module (they match none, or an earlier key matches first), " +
                    $"so they change nothing: {List(unused)}");
        }
        return settled;
    }

    /// <summary>
    /// rank_pattern and alpha_pattern as PEFT before 0.15 read them (<see cref="PeftModuleRules.LegacyFor"/>) may give a
    /// module another alpha, and so another scaling, than they give it now; a config without peft_version (PEFT 0.18
    /// and later write it) does not say which PEFT trained the adapter. Where an earlier reading gives every stored
    /// module the rank its tensors have (the shapes do not rule it out) but some module another alpha, the adapter is
    /// refused: either choice could scale it differently from how it was trained.
    /// </summary>
    public static void CheckPatternVersions(PeftLoraConfig config, PeftModuleRules rules,
        IReadOnlyDictionary<string, SelectedModule> selected, IEnumerable<string> stored, List<string> problems)
    {
        if (!rules.HasPatterns || rules.WrittenSincePatternRules)
            return;
        var differing = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        try
        {
            var readings = stored.SelectMany(m => rules.LegacyFor(m).Select(l => (Module: m, l.Versions, l.R, l.Alpha))).ToList();
            foreach (var byVersions in readings.GroupBy(l => l.Versions))
            {
                // Ranks the stored shapes contradict: that PEFT did not write this adapter.
                if (byVersions.Any(l => l.R != selected[l.Module].R))
                    continue;
                foreach (var (module, versions, _, alpha) in byVersions.Where(l => l.Alpha != selected[l.Module].Alpha))
                {
                    if (!differing.TryGetValue(module, out var list))
                        differing[module] = list = [];
                    list.Add($"{alpha.ToString(CultureInfo.InvariantCulture)} in PEFT {versions}");
                }
            }
        }
        catch (RegexMatchTimeoutException)
        {
            problems.Add("a rank_pattern or alpha_pattern key takes too long to match module paths");
            return;
        }
        if (differing.Count == 0)
            return;
        var modules = differing.Select(d =>
            $"{d.Key} (alpha {selected[d.Key].Alpha.ToString(CultureInfo.InvariantCulture)} in PEFT 0.15 and later, {string.Join(", ", d.Value)})").ToList();
        var written = rules.WrittenBy is { } version ? $"peft_version '{version}' is not 0.15 or later" : "no peft_version says which PEFT trained the adapter";
        problems.Add($"rank_pattern / alpha_pattern give modules another lora_alpha depending on the PEFT that reads them " +
            $"(before 0.15 a key matched as re.match(rf\".*\\.{{key}}$\", path); before 0.14 one key gave both r and alpha), " +
            $"and {written}: {List(modules)}; add \"peft_version\" (e.g. \"0.15.0\") to " +
            "adapter_config.json if a PEFT of 0.15 or later trained it, or rewrite the keys so that every version reads them alike");
    }

    /// <summary>
    /// Compares the stored tensors with the modules the config selects. Returns the keys of lora_A and lora_B of every
    /// selected module that has them; complete only when no problem was added. A selected module with neither is left
    /// unadapted with a warning, as PEFT leaves it (it warns of "missing adapter keys" and keeps the module as
    /// initialised, lora_B zero), unless its initialisation is random; nothing stored for any selected module is a problem.
    /// </summary>
    public static SortedDictionary<string, (string A, string B)> CheckTensors(PeftLoraConfig config, AdapterTarget target,
        IReadOnlyDictionary<string, SelectedModule> selected, IReadOnlyDictionary<string, CheckpointTensorInfo> tensors,
        List<string> problems, List<string> warnings)
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

        CheckModulePaths(target, selected.Keys.ToHashSet(StringComparer.Ordinal), factors.Keys, problems);

        var unadapted = new List<string>();
        var half = new List<string>();
        var notFloat = new List<string>();
        var notMatrix = new List<string>();
        var rank = new List<string>();
        var size = new List<string>();
        var plan = new SortedDictionary<string, (string A, string B)>(StringComparer.Ordinal);
        foreach (var (module, settings) in selected)
        {
            factors.TryGetValue(module, out var pair);
            if (pair.A is null && pair.B is null)
            {
                unadapted.Add(module);
                continue;
            }
            // One factor without the other: PEFT would pair it with a freshly initialised one, which no training wrote.
            if (pair.A is null || pair.B is null)
            {
                half.Add($"{PeftStateDictKey.Standard(module, isA: pair.A is null)} (beside {pair.A ?? pair.B})");
                continue;
            }
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
            var needs = settings.RankKey is null ? "r" : $"{settings.R}";
            var from = settings.RankKey is null ? "" : $", rank_pattern '{settings.RankKey}'";
            if (a.Shape[0] != settings.R) rank.Add($"{a.Name} is {Shape(a.Shape)} (lora_A needs {needs} rows{from})");
            if (b.Shape[1] != settings.R) rank.Add($"{b.Name} is {Shape(b.Shape)} (lora_B needs {needs} columns{from})");
            if (a.Shape[1] != fanIn) size.Add($"{a.Name} is {Shape(a.Shape)} but the layer takes {fanIn} inputs");
            if (b.Shape[0] != fanOut) size.Add($"{b.Name} is {Shape(b.Shape)} but the layer has {fanOut} outputs");
        }
        if (half.Count > 0)
            problems.Add($"modules stored with one LoRA factor but not the other; missing: {List(half)}");
        if (plan.Count == 0 && half.Count == 0 && selected.Count > 0)
            problems.Add($"the file holds LoRA weights for none of the {selected.Count} modules the config selects: {List(selected.Keys.ToList())}");
        else if (unadapted.Count > 0)
            LeaveUnadapted(config, selected, unadapted, problems, warnings);
        if (notFloat.Count > 0)
            problems.Add($"tensors that are not floating point: {List(notFloat)}");
        if (notMatrix.Count > 0)
            problems.Add($"tensors that are not matrices: {List(notMatrix)}");
        if (rank.Count > 0)
            problems.Add(rank.Any(r => r.Contains("rank_pattern", StringComparison.Ordinal))
                ? $"shapes that do not match the modules' ranks (r = {config.R}, or rank_pattern's): {List(rank)}"
                : $"shapes that do not match r = {config.R}: {List(rank)}");
        if (size.Count > 0)
            problems.Add($"shapes that do not fit the {target.Architecture} base (hidden size {target.HiddenSize}): {List(size)}; " +
                "the adapter was made for a model of another size");
        return plan;
    }

    /// <summary>
    /// Selected modules without weights: PEFT keeps them as initialised. Where that initialisation leaves lora_B (or
    /// lora_A) zero they add nothing, and are left unadapted with a warning; where it is random (init_lora_weights false,
    /// "orthogonal") PEFT's output would be noise that no one trained, so the adapter is refused.
    /// </summary>
    private static void LeaveUnadapted(PeftLoraConfig config, IReadOnlyDictionary<string, SelectedModule> selected,
        List<string> unadapted, List<string> problems, List<string> warnings)
    {
        var where = DescribeByLayer(selected.Keys, unadapted);
        if (s_randomInits.Contains(config.InitLoraWeights))
            problems.Add($"init_lora_weights is {config.InitLoraWeights}, and {unadapted.Count} of the {selected.Count} modules the config " +
                $"selects have no LoRA weights in the file ({where}): PEFT would run them with randomly initialised factors; " +
                "store their weights, or leave them out of target_modules (or layers_to_transform)");
        else
            warnings.Add($"{unadapted.Count} of the {selected.Count} modules the config selects have no LoRA weights in the file " +
                $"and are left unadapted, as PEFT leaves them (it warns of missing adapter keys): {where}");
    }

    /// <summary>"layer 0: mlp.fc_in; layer 1: every selected module (attn.q_proj, attn.v_proj)"-style listing.</summary>
    private static string DescribeByLayer(IEnumerable<string> selected, List<string> missing)
    {
        var selectedByLayer = selected.GroupBy(m => LayerTemplate(m).Layer).ToDictionary(g => g.Key, g => g.Count());
        var parts = missing.GroupBy(m => LayerTemplate(m).Layer).OrderBy(g => g.Key).Select(g =>
        {
            if (g.Key < 0)
                return List(g.ToList());
            var names = g.Select(ModuleInLayer).ToList();
            return g.Count() == selectedByLayer[g.Key]
                ? $"layer {g.Key}: every selected module ({List(names)})"
                : $"layer {g.Key}: {List(names)}";
        }).ToList();
        return parts.Count <= Shown ? string.Join("; ", parts) : string.Join("; ", parts.Take(Shown)) + $"; and {parts.Count - Shown} more layers";
    }

    /// <summary>"attn.q_proj" of "transformer.h.1.attn.q_proj": what follows the layer index.</summary>
    private static string ModuleInLayer(string module)
    {
        var segments = module.Split('.');
        var index = Array.FindIndex(segments, s => s.Length > 0 && s.All(char.IsAsciiDigit));
        return index < 0 ? module : string.Join('.', segments[(index + 1)..]);
    }

    /// <summary>Stored modules the base lacks (another architecture, a deeper model) or that the config does not select.</summary>
    private static void CheckModulePaths(AdapterTarget target, IReadOnlySet<string> selected, IEnumerable<string> stored, List<string> problems)
    {
        var templates = target.Modules.Keys.Select(m => LayerTemplate(m).Template).ToHashSet(StringComparer.Ordinal);
        var foreign = new List<string>();
        var deeper = new List<string>();
        var unselected = new List<string>();
        var deepest = BigInteger.MinusOne;
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
                deepest = BigInteger.Max(deepest, layer);
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
    /// <remarks>The index is whatever digits the file holds: as an int, h.99999999999999999999 said "at least -2147483648 layers".</remarks>
    private static (string Template, BigInteger Layer) LayerTemplate(string module)
    {
        var segments = module.Split('.');
        for (var i = 0; i < segments.Length; i++)
        {
            if (segments[i].Length > 0 && segments[i].All(char.IsAsciiDigit))
            {
                var layer = BigInteger.Parse(segments[i], NumberStyles.None, CultureInfo.InvariantCulture);
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
