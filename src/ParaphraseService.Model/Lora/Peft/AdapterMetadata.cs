using ParaphraseService.Model.Checkpoints;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// Our own file beside the PEFT files (<see cref="FileName"/>): what PEFT has no field for. PEFT and other tools ignore
/// it. Fields this version does not know are kept in <see cref="OtherFields"/> and written back, so a file from a
/// newer version survives being re-saved by an older one.
/// </summary>
public sealed record AdapterMetadata
{
    public const string FileName = "paraphrase_adapter.json";

    private const string UploadText = "upload", FineTuneText = "fine-tune";

    /// <summary>How requests are put to the model (the service's prompt format); null to use the service default.</summary>
    public string? PromptTemplate { get; init; }

    public required AdapterOrigin Origin { get; init; }

    /// <summary>When the adapter was uploaded or trained; read and written as UTC.</summary>
    public required DateTimeOffset Created { get; init; }

    /// <summary>Free-form training summary (dataset, epochs, learning rate, ...): a JSON object, or null.</summary>
    public JsonElement? Training { get; init; }

    /// <summary>Evaluation figures by name, e.g. "eval_loss" -> 1.25.</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();

    /// <summary>Fields this version does not know, as read.</summary>
    public IReadOnlyDictionary<string, JsonElement> OtherFields { get; init; } = new Dictionary<string, JsonElement>();

    /// <summary>Field by field, with JSON values compared structurally and <see cref="Created"/> as an instant.</summary>
    public bool Equals(AdapterMetadata? other) =>
        other is not null && PromptTemplate == other.PromptTemplate && Origin == other.Origin && Created == other.Created &&
        (Training is { } training ? other.Training is { } otherTraining && JsonElement.DeepEquals(training, otherTraining) : other.Training is null) &&
        Metrics.Count == other.Metrics.Count && Metrics.All(p => other.Metrics.TryGetValue(p.Key, out var v) && v.Equals(p.Value)) &&
        OtherFields.Count == other.OtherFields.Count &&
        OtherFields.All(p => other.OtherFields.TryGetValue(p.Key, out var v) && JsonElement.DeepEquals(p.Value, v));

    public override int GetHashCode() => HashCode.Combine(PromptTemplate, Origin, Created, Metrics.Count);

    /// <exception cref="AdapterValidationException">Missing, not JSON, or a field missing or of the wrong type.</exception>
    public static AdapterMetadata Load(string path) => FromJson(JsonFields.ReadFile(path), path);

    /// <exception cref="AdapterValidationException">Not JSON, or a field missing or of the wrong type.</exception>
    public static AdapterMetadata FromJson(string json, string source) => JsonFields.ParseOrThrow(json, source, Parse);

    /// <summary>Writes the file through a temporary file and a rename.</summary>
    /// <exception cref="InvalidOperationException">A field cannot be written (see <see cref="ToJson"/>).</exception>
    public void Save(string path)
    {
        AtomicFiles.WriteAllText(path, ToJson());
    }

    /// <summary>The file's text, keys sorted.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Training"/> is not a JSON object, or a metric is not finite.</exception>
    public string ToJson()
    {
        if (Training is { ValueKind: not JsonValueKind.Object } training)
        {
            throw new InvalidOperationException($"Adapter metadata: training must be a JSON object, not {training.ValueKind}.");
        }
        if (Metrics.FirstOrDefault(p => !double.IsFinite(p.Value)) is { Key: not null } bad)
        {
            throw new InvalidOperationException($"Adapter metadata: metric '{bad.Key}' is {bad.Value}; JSON holds only finite numbers.");
        }
        var fields = new SortedDictionary<string, Action<Utf8JsonWriter>>(StringComparer.Ordinal);
        foreach (var (name, value) in OtherFields)
        {
            fields[name] = w => value.WriteTo(w);
        }
        fields["origin"] = w => w.WriteStringValue(Origin == AdapterOrigin.FineTune ? FineTuneText : UploadText);
        fields["created"] = w => w.WriteStringValue(
            Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture));
        if (PromptTemplate is not null)
        {
            fields["prompt_template"] = w => w.WriteStringValue(PromptTemplate);
        }
        if (Training is { } trainingObject)
        {
            fields["training"] = w => trainingObject.WriteTo(w);
        }
        fields["metrics"] = w =>
        {
            w.WriteStartObject();
            foreach (var (name, value) in Metrics.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                w.WriteNumber(name, value);
            }
            w.WriteEndObject();
        };

        return JsonFields.Write(fields);
    }

    internal static AdapterMetadata? Parse(string json, List<string> problems)
    {
        var fields = JsonFields.Parse(json, problems);
        if (fields is null)
        {
            return null;
        }
        var origin = fields.String("origin", null) switch
        {
            UploadText => AdapterOrigin.Upload,
            FineTuneText => AdapterOrigin.FineTune,
            null => Missing<AdapterOrigin>(problems, $"origin is missing (\"{UploadText}\" or \"{FineTuneText}\")"),
            var other => Missing<AdapterOrigin>(problems, $"origin is '{other}', not \"{UploadText}\" or \"{FineTuneText}\""),
        };
        var metadata = new AdapterMetadata
        {
            Origin = origin,
            Created = ReadCreated(fields, problems),
            PromptTemplate = ReadPromptTemplate(fields, problems),
            Training = fields.Object("training"),
            Metrics = ReadMetrics(fields, problems),
        };
        return metadata with { OtherFields = new Dictionary<string, JsonElement>(fields.Remaining, StringComparer.Ordinal) };
    }

    // The placeholder of Training's PromptTemplate: an adapter's template is checked where its file is read, so the error
    // names the file, not only when a request first renders it.
    private const string Placeholder = "{text}";

    private static string? ReadPromptTemplate(JsonFields fields, List<string> problems)
    {
        var template = fields.String("prompt_template", null);
        if (template is null)
            return null;
        var count = template.Split(Placeholder).Length - 1;
        if (string.IsNullOrWhiteSpace(template) || count != 1)
            problems.Add($"prompt_template must contain the placeholder {Placeholder} exactly once (it is where the text to paraphrase goes); it contains it {count} times");
        return template;
    }

    private static DateTimeOffset ReadCreated(JsonFields fields, List<string> problems)
    {
        if (!fields.Take("created", out var value))
        {
            return Missing<DateTimeOffset>(problems, "created is missing (an ISO 8601 UTC time such as \"2026-11-30T12:00:00Z\")");
        }
        // An explicit offset is required: a time without one would mean whatever zone the reader happens to be in.
        if (value.ValueKind == JsonValueKind.String && value.GetString() is { } text &&
            DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var created) &&
            HasOffset(text))
        {
            return created.ToUniversalTime();
        }
        return fields.Wrong("created", "an ISO 8601 time with a zone, such as \"2026-11-30T12:00:00Z\"", value, default(DateTimeOffset));
    }

    private static bool HasOffset(string text)
    {
        var time = text.IndexOf('T', StringComparison.OrdinalIgnoreCase);
        return time > 0 && (text.EndsWith('Z') || text.EndsWith('z') || text.AsSpan(time).IndexOfAny('+', '-') > 0);
    }

    private static Dictionary<string, double> ReadMetrics(JsonFields fields, List<string> problems)
    {
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        if (fields.Object("metrics") is not { } element)
        {
            return metrics;
        }
        foreach (var metric in element.EnumerateObject())
        {
            if (metric.Value.ValueKind == JsonValueKind.Number && metric.Value.TryGetDouble(out var number) && double.IsFinite(number))
            {
                metrics[metric.Name] = number;
            }
            else
            {
                problems.Add($"metric '{metric.Name}' must be a number, not {JsonFields.Describe(metric.Value)}");
            }
        }
        return metrics;
    }

    private static T Missing<T>(List<string> problems, string problem)
    {
        problems.Add(problem);
        return default!;
    }
}
