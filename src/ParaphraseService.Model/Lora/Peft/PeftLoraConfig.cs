using ParaphraseService.Model.Checkpoints;
using System.Text;
using System.Text.Json;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// A PEFT <c>adapter_config.json</c> for LoRA, with PEFT's field names and defaults (a field missing from the file
/// takes the value PEFT's <c>LoraConfig</c> gives it). The fields a plain LoRA needs are typed; every other field PEFT
/// (or a newer PEFT) writes is kept verbatim in <see cref="OtherFields"/> and written back by <see cref="Save"/>.
/// Reading checks only types; whether this service can run the adapter is decided by
/// <see cref="PeftAdapterFiles.Load"/>, which refuses the fields that change the math.
/// </summary>
public sealed record PeftLoraConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>Values of <c>init_lora_weights</c> that PEFT writes as JSON booleans.</summary>
    public const string InitTrue = "true", InitFalse = "false";

    /// <summary>PEFT's <c>peft_type</c>; "LORA" for every adapter this service runs.</summary>
    public string? PeftType { get; init; } = "LORA";

    /// <summary>PEFT's <c>task_type</c>: "CAUSAL_LM", or null for an adapter saved without one.</summary>
    public string? TaskType { get; init; } = "CAUSAL_LM";

    /// <summary>The LoRA rank <c>r</c>: rows of every lora_A, columns of every lora_B.</summary>
    public int R { get; init; } = 8;

    /// <summary><c>lora_alpha</c>; PEFT declares it an int but writes a float after some conversions (e.g. alpha * sqrt(2)).</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary><c>lora_dropout</c>, used only in training.</summary>
    public double LoraDropout { get; init; }

    /// <summary><c>target_modules</c>; null means PEFT's default for the architecture (GPT-J: q_proj and v_proj).</summary>
    public PeftTargetModules? TargetModules { get; init; }

    /// <summary><c>exclude_modules</c>: same forms as <see cref="TargetModules"/>; modules they match are not adapted.</summary>
    public PeftTargetModules? ExcludeModules { get; init; }

    public string? BaseModelNameOrPath { get; init; }

    /// <summary>PEFT's <c>revision</c> of the base model.</summary>
    public string? Revision { get; init; }

    /// <summary>True when the base layer stores its weight as (in, out) (GPT-2's Conv1D); never for GPT-J's nn.Linear.</summary>
    public bool FanInFanOut { get; init; }

    /// <summary>"none", "all" or "lora_only": which base biases were trained and saved.</summary>
    public string Bias { get; init; } = "none";

    /// <summary>Rank-stabilised LoRA: scaling alpha / sqrt(r) instead of alpha / r.</summary>
    public bool UseRslora { get; init; }

    public bool UseDora { get; init; }

    /// <summary>Base modules trained in full and saved beside the LoRA weights; null or empty for a plain LoRA.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>
    /// <c>init_lora_weights</c>: <see cref="InitTrue"/> or <see cref="InitFalse"/> for PEFT's booleans, else the method
    /// name PEFT wrote ("gaussian", "pissa", "loftq", ...).
    /// </summary>
    public string InitLoraWeights { get; init; } = InitTrue;

    public bool InferenceMode { get; init; } = true;

    /// <summary>
    /// Every other field of the file (peft_version, rank_pattern, layers_to_transform, loftq_config, ...), as read. The
    /// per-module fields among them (layers_to_transform, layers_pattern, rank_pattern, alpha_pattern) are applied when
    /// an adapter is loaded; see <see cref="PeftAdapter.ModuleSettings"/>.
    /// </summary>
    public IReadOnlyDictionary<string, JsonElement> OtherFields { get; init; } = new Dictionary<string, JsonElement>();

    /// <summary>The factor PEFT multiplies B(A(x)) by: alpha / r, or alpha / sqrt(r) with rsLoRA.</summary>
    public double Scaling => ScalingOf(R, LoraAlpha);

    /// <summary>
    /// The scaling of a module with its own <paramref name="r"/> and <paramref name="alpha"/> (rank_pattern,
    /// alpha_pattern), as PEFT's LoraLayer.update_layer computes it.
    /// </summary>
    public double ScalingOf(int r, double alpha) => UseRslora ? alpha / Math.Sqrt(r) : alpha / r;

    /// <summary>Field by field, lists and <see cref="OtherFields"/> included (JSON values compared structurally).</summary>
    public bool Equals(PeftLoraConfig? other) =>
        other is not null &&
        (PeftType, TaskType, R, LoraAlpha, LoraDropout, TargetModules, ExcludeModules, BaseModelNameOrPath, Revision) ==
        (other.PeftType, other.TaskType, other.R, other.LoraAlpha, other.LoraDropout, other.TargetModules, other.ExcludeModules,
            other.BaseModelNameOrPath, other.Revision) &&
        (FanInFanOut, Bias, UseRslora, UseDora, InitLoraWeights, InferenceMode) ==
        (other.FanInFanOut, other.Bias, other.UseRslora, other.UseDora, other.InitLoraWeights, other.InferenceMode) &&
        (ModulesToSave ?? []).SequenceEqual(other.ModulesToSave ?? []) && (ModulesToSave is null) == (other.ModulesToSave is null) &&
        OtherFields.Count == other.OtherFields.Count &&
        OtherFields.All(p => other.OtherFields.TryGetValue(p.Key, out var value) && JsonElement.DeepEquals(p.Value, value));

    public override int GetHashCode() => HashCode.Combine(PeftType, R, LoraAlpha, TargetModules, UseRslora, OtherFields.Count);

    /// <summary>Reads an <c>adapter_config.json</c>.</summary>
    /// <exception cref="AdapterValidationException">The file is missing, not JSON, or has fields of the wrong type.</exception>
    public static PeftLoraConfig Load(string path) => FromJson(JsonFields.ReadFile(path), path);

    /// <summary>Parses the text of an <c>adapter_config.json</c>; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="AdapterValidationException">Not JSON, or fields of the wrong type.</exception>
    public static PeftLoraConfig FromJson(string json, string source) => JsonFields.ParseOrThrow(json, source, Parse);

    /// <summary>Writes the file as PEFT does (keys sorted, two-space indent), through a temporary file and a rename.</summary>
    public void Save(string path)
    {
        AtomicFiles.WriteAllText(path, ToJson());
    }

    /// <summary>The file's text: the typed fields and <see cref="OtherFields"/>, keys sorted as PEFT's json.dumps(sort_keys=True).</summary>
    public string ToJson()
    {
        var fields = new SortedDictionary<string, Action<Utf8JsonWriter>>(StringComparer.Ordinal);
        foreach (var (name, value) in OtherFields)
        {
            fields[name] = w => value.WriteTo(w);
        }
        fields["peft_type"] = w => WriteString(w, PeftType);
        fields["task_type"] = w => WriteString(w, TaskType);
        fields["r"] = w => w.WriteNumberValue(R);
        fields["lora_alpha"] = w => w.WriteNumberValue(LoraAlpha);
        fields["lora_dropout"] = w => w.WriteNumberValue(LoraDropout);
        fields["target_modules"] = w => WriteTargets(w, TargetModules);
        fields["exclude_modules"] = w => WriteTargets(w, ExcludeModules);
        fields["base_model_name_or_path"] = w => WriteString(w, BaseModelNameOrPath);
        fields["revision"] = w => WriteString(w, Revision);
        fields["fan_in_fan_out"] = w => w.WriteBooleanValue(FanInFanOut);
        fields["bias"] = w => w.WriteStringValue(Bias);
        fields["use_rslora"] = w => w.WriteBooleanValue(UseRslora);
        fields["use_dora"] = w => w.WriteBooleanValue(UseDora);
        fields["modules_to_save"] = w => WriteStrings(w, ModulesToSave);
        fields["init_lora_weights"] = w =>
        {
            if (InitLoraWeights is InitTrue or InitFalse)
            {
                w.WriteBooleanValue(InitLoraWeights == InitTrue);
            }
            else
            {
                w.WriteStringValue(InitLoraWeights);
            }
        };
        fields["inference_mode"] = w => w.WriteBooleanValue(InferenceMode);

        return JsonFields.Write(fields);
    }

    /// <summary>Parses the typed fields, recording each problem; null when the text is not a JSON object at all.</summary>
    internal static PeftLoraConfig? Parse(string json, List<string> problems)
    {
        var fields = JsonFields.Parse(json, problems);
        if (fields is null)
        {
            return null;
        }
        var defaults = new PeftLoraConfig();
        var config = new PeftLoraConfig
        {
            PeftType = fields.String("peft_type", null),
            TaskType = fields.String("task_type", null),
            R = fields.Int("r", defaults.R),
            LoraAlpha = fields.Number("lora_alpha", defaults.LoraAlpha),
            LoraDropout = fields.Number("lora_dropout", defaults.LoraDropout),
            TargetModules = fields.TargetModules("target_modules"),
            ExcludeModules = fields.TargetModules("exclude_modules"),
            BaseModelNameOrPath = fields.String("base_model_name_or_path", null),
            Revision = fields.String("revision", null),
            FanInFanOut = fields.Bool("fan_in_fan_out", defaults.FanInFanOut),
            Bias = fields.String("bias", defaults.Bias) ?? defaults.Bias,
            UseRslora = fields.Bool("use_rslora", defaults.UseRslora),
            UseDora = fields.Bool("use_dora", defaults.UseDora),
            ModulesToSave = fields.StringList("modules_to_save"),
            InitLoraWeights = ReadInit(fields),
            InferenceMode = fields.Bool("inference_mode", defaults.InferenceMode),
        };
        return config with { OtherFields = new Dictionary<string, JsonElement>(fields.Remaining, StringComparer.Ordinal) };
    }

    private static string ReadInit(JsonFields fields)
    {
        if (!fields.Take("init_lora_weights", out var value))
        {
            return InitTrue;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => InitTrue,
            JsonValueKind.False => InitFalse,
            JsonValueKind.String => value.GetString()!,
            _ => fields.Wrong("init_lora_weights", "true, false or a method name", value, InitTrue),
        };
    }

    private static void WriteString(Utf8JsonWriter writer, string? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }

    private static void WriteStrings(Utf8JsonWriter writer, IReadOnlyList<string>? values)
    {
        if (values is null)
        {
            writer.WriteNullValue();
            return;
        }
        writer.WriteStartArray();
        foreach (var value in values)
        {
            writer.WriteStringValue(value);
        }
        writer.WriteEndArray();
    }

    private static void WriteTargets(Utf8JsonWriter writer, PeftTargetModules? targets)
    {
        if (targets?.Pattern is { } pattern)
        {
            writer.WriteStringValue(pattern);
        }
        else
        {
            WriteStrings(writer, targets?.Names);
        }
    }
}
