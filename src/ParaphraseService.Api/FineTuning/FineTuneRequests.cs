using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.FineTuning;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// A <see cref="FineTuneRequest"/> read from JSON and checked completely, against the server's options and the model it
/// will train, before a job is queued; and turned into what the trainer and the dataset reader take. Every problem is
/// keyed by the field it is about (camelCase, as sent).
/// </summary>
public static class FineTuneRequests
{
    /// <summary>The largest options JSON (a JSON body, or the multipart 'options' field).</summary>
    public const int MaxOptionsBytes = 1 << 20;

    /// <summary>The longest column name, label value or dataset path, in characters.</summary>
    public const int MaxNameLength = 256, MaxPathLength = 4096;

    /// <summary>The most label values.</summary>
    public const int MaxLabelValues = 100;

    /// <summary>The longest prompt template, in characters (it must fit maxSequenceLength tokens anyway).</summary>
    public const int MaxTemplateLength = 64 * 1024;

    // A problem names at most this many unknown fields (a body of 10,000 of them gets a short answer).
    private const int MaxUnknownReported = 20;
    private const int MaxQuotedChars = 40;

    // The options' JSON names; first, as the fields below are built from it.
    private static readonly Dictionary<string, string> s_fieldNames = typeof(FineTuneRequest).GetConstructors()[0].GetParameters()
        .Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name!)).ToDictionary(n => n, n => n, StringComparer.OrdinalIgnoreCase);

    /// <summary>Reads a request's options once <see cref="Parse"/> has checked every field.</summary>
    private static readonly JsonSerializerOptions s_strict = new(FineTuneJobStore.Json)
    {
        NumberHandling = JsonNumberHandling.Strict,
        RespectNullableAnnotations = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Every option, by its JSON name: its type, and whether null is allowed.</summary>
    private static readonly Dictionary<string, (Type Type, bool Nullable)> s_fields = Fields();

    /// <summary>The option names, in declaration order, for messages.</summary>
    public static IReadOnlyList<string> OptionNames { get; } = [.. typeof(FineTuneRequest).GetConstructors()[0].GetParameters().Select(p => JsonName(p.Name!))];

    /// <summary>
    /// Reads options JSON: malformed JSON, a value that is not an object, unknown or repeated option names, and values
    /// of the wrong type (a string for a number, NaN, a fraction for a whole number, null for a value that needs one)
    /// are problems of the field they are in (<paramref name="container"/> when no field is to blame). Null when there
    /// is any problem.
    /// </summary>
    /// <param name="container">The field the JSON came in ('options' of a form) or 'body'.</param>
    public static FineTuneRequest? Parse(ReadOnlySpan<byte> json, string container, out Dictionary<string, string[]> problems)
    {
        problems = [];
        if (Syntax(json, container) is { } syntax)
        {
            problems[syntax.Field] = [syntax.Message];
            return null;
        }
        using var document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            problems[container] = [$"the options must be a JSON object, not {Kind(root)} (at least {{\"adapter\": \"name\"}})"];
            return null;
        }

        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var unknown = new List<string>();
        foreach (var property in root.EnumerateObject())
        {
            if (!s_fields.TryGetValue(property.Name, out var field))
            {
                unknown.Add(property.Name);
                continue;
            }
            var name = JsonName(property.Name);
            if (!seen.Add(property.Name))
            {
                Add(problems, name, $"{name} is given more than once");
                continue;
            }
            if (TypeProblem(property.Value, field.Type, field.Nullable) is { } typeProblem)
                Add(problems, name, $"{name} {typeProblem}");
        }
        foreach (var name in unknown.Distinct(StringComparer.Ordinal).Take(MaxUnknownReported))
            Add(problems, Quote(name), $"'{Quote(name)}' is not an option (options: {string.Join(", ", OptionNames)})");
        if (unknown.Count > MaxUnknownReported)
            Add(problems, container, $"{unknown.Count} unknown options in all; the first {MaxUnknownReported} are listed");
        if (problems.Count > 0)
            return null;
        try
        {
            return root.Deserialize<FineTuneRequest>(s_strict) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            // Not expected after the checks above; still a 400 naming the field, never a 500.
            problems[FieldOf(e.Path) ?? container] = [$"cannot be read: {e.Message}"];
            return null;
        }
    }

    /// <summary>
    /// Every problem of <paramref name="request"/>'s values, by field, given the server's options and the model the job
    /// will train: names and sizes, the target modules against the model's family, the prompt against
    /// maxSequenceLength, and every training setting. Empty when the request can be queued.
    /// </summary>
    public static Dictionary<string, string[]> Problems(FineTuneRequest request, FineTuneOptions options, LoadedModel model, bool multipart)
    {
        var problems = new Dictionary<string, string[]>();
        void Check(bool ok, string field, string message)
        {
            if (!ok) Add(problems, field, message);
        }

        if (AdapterName.Problem(request.Adapter) is { } nameProblem) Add(problems, "adapter", $"adapter: {nameProblem}");
        if (multipart)
            Check(request.DatasetPath is null, "datasetPath", "datasetPath is for JSON requests: a form sends the file in its 'dataset' field");
        else
            Check(request.DatasetPath is null || (request.DatasetPath.Length <= MaxPathLength && !request.DatasetPath.Any(char.IsControl)), "datasetPath",
                $"datasetPath must be a path of at most {MaxPathLength} characters without control characters");
        Check(FormatOf(request) is not null, "format", $"format must be one of {string.Join(", ", Enum.GetNames<DatasetFormat>().Select(n => n.ToLowerInvariant()))} (got '{Quote(request.Format)}')");
        foreach (var (field, value) in new[] { ("sourceColumn", request.SourceColumn), ("targetColumn", request.TargetColumn), ("labelColumn", request.LabelColumn) })
            if (value is not null && NameProblem(value) is { } problem) Add(problems, field, $"{field} {problem}");
        if (request.LabelValues is { } values)
        {
            Check(request.LabelColumn is not null, "labelValues", "labelValues needs labelColumn (the column the values are in)");
            Check(values.Count is >= 1 and <= MaxLabelValues, "labelValues", $"labelValues must list 1-{MaxLabelValues} values (got {values.Count})");
            if (values.Take(MaxLabelValues).Select(v => v is null ? "must not be null" : NameProblem(v)).FirstOrDefault(p => p is not null) is { } valueProblem)
                Add(problems, "labelValues", $"each label value {valueProblem}");
        }
        Check(request.SampleSize is null or >= 1, "sampleSize", $"sampleSize must be at least 1 (got {request.SampleSize})");
        Check(request.EvalFraction is >= 0 and <= 0.5, "evalFraction", $"evalFraction must be between 0 and 0.5 (got {request.EvalFraction})");
        if (request.TargetModules is { } modules)
        {
            var target = model.Adapters?.Target;
            if (modules.Any(m => m is null)) Add(problems, "targetModules", "targetModules: module names must not be null");
            else if (target is null) Add(problems, "targetModules", "targetModules: the model was loaded without LoRA support");
            else if (LoraTargets.Problem(modules, target) is { } targetProblem) Add(problems, "targetModules", $"targetModules: {targetProblem}");
        }

        var settings = Settings(request, options);
        foreach (var (field, message) in settings.Problems())
            Add(problems, field, message);
        var positions = model.Config.MaxPositions;
        Check(request.MaxSequenceLength <= positions, "maxSequenceLength",
            $"maxSequenceLength must be at most the {positions} positions the model holds (got {request.MaxSequenceLength})");

        if (request.PromptTemplate is { Length: > MaxTemplateLength } long_)
            Add(problems, "promptTemplate", $"promptTemplate is {long_.Length:N0} characters; at most {MaxTemplateLength:N0} are allowed");
        else if (TemplateOrProblem(request) is { Problem: { } templateProblem })
            Add(problems, "promptTemplate", $"promptTemplate: {templateProblem}");
        else if (!problems.ContainsKey("maxSequenceLength")
            && TrainingBatches.TemplateProblem(Template(request), model.Tokenizer, request.MaxSequenceLength) is { } fit)
            Add(problems, request.PromptTemplate is null ? "maxSequenceLength" : "promptTemplate", $"{fit}: raise maxSequenceLength or shorten the template");
        return problems;
    }

    /// <summary>The prompt the job trains with, written into the adapter's metadata: the request's, or the fine-tune default.</summary>
    /// <exception cref="ArgumentException">The request's template is invalid (<see cref="Problems"/> refuses such a request).</exception>
    public static PromptTemplate Template(FineTuneRequest request) => PromptTemplate.ForAdapter(request.PromptTemplate);

    /// <param name="familyDefault">The model family's default target modules (PEFT's: q_proj, v_proj for GPT-J and
    /// GPT-Neo; c_attn for GPT-2), used when the request names none.</param>
    public static LoraTrainingOptions Training(this FineTuneRequest request, IReadOnlyList<string>? familyDefault = null) => new()
    {
        Rank = request.Rank,
        Alpha = request.Alpha,
        Dropout = request.Dropout,
        TargetModules = request.TargetModules is null ? familyDefault ?? ["q_proj", "v_proj"]
            : LoraTargets.IsAllLinear(request.TargetModules) ? null : request.TargetModules,
        LearningRate = request.LearningRate,
        Schedule = request.Schedule,
        WarmupSteps = request.WarmupSteps,
        Epochs = request.Epochs,
        MaxSteps = request.MaxSteps,
        BatchSize = request.BatchSize,
        GradientAccumulation = request.GradientAccumulation,
        MaxSequenceLength = request.MaxSequenceLength,
        Seed = request.Seed,
        GradientCheckpointing = request.GradientCheckpointing,
    };

    public static FineTuneSettings Settings(FineTuneRequest request, FineTuneOptions options, IReadOnlyList<string>? familyDefault = null) => new()
    {
        Training = request.Training(familyDefault) with { MaxExamplesPerPass = options.MaxExamplesPerPass },
        EvalEverySteps = request.EvalEverySteps,
        EarlyStoppingPatience = request.EarlyStoppingPatience,
        CheckpointEverySteps = request.CheckpointEverySteps ?? options.CheckpointEverySteps,
        BleuSamples = request.BleuSamples,
    };

    /// <param name="maxDecompressedBytes">The most bytes a gzip-compressed dataset may decompress to (FineTunes:MaxDatasetBytes).</param>
    public static DatasetReadOptions ReadOptions(FineTuneRequest request, long? maxDecompressedBytes = null) => new()
    {
        Format = FormatOf(request) ?? throw new ArgumentException($"'{request.Format}' is not a dataset format."),
        SourceColumn = request.SourceColumn,
        TargetColumn = request.TargetColumn,
        LabelColumn = request.LabelColumn,
        LabelValues = request.LabelValues,
        BothDirections = request.BothDirections,
        Lenient = request.Lenient,
        TsvQuoting = request.TsvQuoting,
        MaxDecompressedBytes = maxDecompressedBytes,
    };

    /// <summary>
    /// Reads and prepares the job's data (deterministic for the request's seed, so a resumed job gets the same split).
    /// A pair whose training example (the prompt rendered from its source, then its target) has more than
    /// maxSequenceLength tokens is dropped and counted as too long: no example is ever cut.
    /// </summary>
    /// <exception cref="DatasetException">The file is not a usable dataset; the message names the lines.</exception>
    /// <param name="maxDecompressedBytes">The most bytes a gzip-compressed dataset may decompress to (FineTunes:MaxDatasetBytes).</param>
    public static PreparedDataset Prepare(string datasetFile, FineTuneRequest request, Gpt2Tokenizer tokenizer, long? maxDecompressedBytes = null)
    {
        var read = ParaphraseDatasetReader.Read(datasetFile, ReadOptions(request, maxDecompressedBytes));
        var template = Template(request);
        var prepared = DatasetPreparation.Prepare(read, new DatasetPreparationOptions
        {
            SampleSize = request.SampleSize,
            EvalFraction = request.EvalFraction,
            Seed = unchecked((int)request.Seed),
            MaxTokensPerExample = request.MaxSequenceLength,
            ExampleTokenCounter = pair => TrainingBatches.Length(pair, template, tokenizer),
        }, Path.GetFileName(datasetFile));
        if (prepared.Train.Count == 0)
            throw new DatasetException(Path.GetFileName(datasetFile), "no pair is left to train on after dropping copies, duplicates and pairs too long.");
        return prepared;
    }

    private static DatasetFormat? FormatOf(FineTuneRequest request) =>
        Enum.GetNames<DatasetFormat>().FirstOrDefault(n => string.Equals(n, request.Format, StringComparison.OrdinalIgnoreCase)) is { } name
            ? Enum.Parse<DatasetFormat>(name)
            : null;

    private static (PromptTemplate? Template, string? Problem) TemplateOrProblem(FineTuneRequest request)
    {
        try
        {
            return (Template(request), null);
        }
        catch (ArgumentException e)
        {
            return (null, e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message);
        }
    }

    /// <summary>Why a column name or label value cannot be one: empty, too long, or holding control characters.</summary>
    private static string? NameProblem(string value) =>
        string.IsNullOrWhiteSpace(value) ? "must not be empty"
        : value.Length > MaxNameLength ? $"must be at most {MaxNameLength} characters (got {value.Length:N0})"
        : value.Any(char.IsControl) ? "must not hold control characters (tabs, line breaks)"
        : null;

    /// <summary>Why <paramref name="value"/> cannot be a <paramref name="type"/>, or null.</summary>
    private static string? TypeProblem(JsonElement value, Type type, bool nullable)
    {
        if (value.ValueKind == JsonValueKind.Null)
            return nullable ? null : $"must not be null: {Expected(type)}";
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        var ok = underlying switch
        {
            _ when underlying == typeof(bool) => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
            _ when underlying == typeof(string) => value.ValueKind == JsonValueKind.String,
            _ when underlying == typeof(int) => value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out _),
            _ when underlying == typeof(long) => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
            _ when underlying == typeof(double) => value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && double.IsFinite(d),
            _ when underlying.IsEnum => value.ValueKind == JsonValueKind.String
                && Enum.GetNames(underlying).Any(n => string.Equals(n, value.GetString(), StringComparison.OrdinalIgnoreCase)),
            _ when underlying == typeof(IReadOnlyList<string>) => value.ValueKind == JsonValueKind.Array
                && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String),
            _ => false,
        };
        return ok ? null : $"must be {Expected(underlying)} (got {Kind(value)})";
    }

    private static string Expected(Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        return underlying switch
        {
            _ when underlying == typeof(bool) => "true or false",
            _ when underlying == typeof(string) => "a string",
            _ when underlying == typeof(int) => $"a whole number from {int.MinValue} to {int.MaxValue}",
            _ when underlying == typeof(long) => $"a whole number from {long.MinValue} to {long.MaxValue}",
            _ when underlying == typeof(double) => "a finite number (NaN and Infinity are not numbers in JSON)",
            _ when underlying.IsEnum => $"one of {string.Join(", ", Enum.GetNames(underlying).Select(n => n.ToLowerInvariant()))}",
            _ when underlying == typeof(IReadOnlyList<string>) => "an array of strings",
            _ => underlying.Name,
        };
    }

    /// <summary>A JSON value for a message: its kind, and the value itself when short.</summary>
    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => $"an array of {value.GetArrayLength()}",
        JsonValueKind.String => $"the string \"{Quote(value.GetString()!)}\"",
        JsonValueKind.Number => $"{Quote(value.GetRawText())}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString(),
    };

    /// <summary>The first JSON syntax error, blamed on the field whose value it is in; null when the JSON is well formed.</summary>
    private static (string Field, string Message)? Syntax(ReadOnlySpan<byte> json, string container)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        string? field = null;
        try
        {
            if (json.IsEmpty || json.IndexOfAnyExcept(" \t\r\n"u8) < 0)
                return (container, $"send the job's options as JSON (at least {{\"adapter\": \"name\"}})");
            while (reader.Read())
            {
                // Reading every string now finds invalid escapes (a lone surrogate) before anything else reads them.
                var text = reader.TokenType is JsonTokenType.PropertyName or JsonTokenType.String ? reader.GetString() : null;
                if (reader.CurrentDepth == 1 && reader.TokenType == JsonTokenType.PropertyName)
                    field = text;
                else if (reader.CurrentDepth == 1 && reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
                    field = null; // the value of that field was read whole
            }
            return null;
        }
        catch (InvalidOperationException e)
        {
            var reason = $"a string cannot be read ({Reason(e.Message)})";
            return field is null ? (container, $"not valid JSON: {reason}") : (JsonName(field), $"{JsonName(field)}: {reason}");
        }
        catch (JsonException e)
        {
            var where = $"line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}";
            var reason = Reason(e.Message);
            return field is null
                ? (container, $"not valid JSON at {where}: {reason}")
                : (JsonName(field), $"{JsonName(field)} is not valid JSON at {where}: {reason}" +
                    (reason.Contains("invalid start of a value", StringComparison.Ordinal) || reason.Contains("within a number", StringComparison.Ordinal)
                        ? " (NaN and Infinity are not JSON numbers)" : ""));
        }
    }

    /// <summary>The reader's reason without its position and path (given separately).</summary>
    private static string Reason(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        var path = message.IndexOf(" Path:", StringComparison.Ordinal);
        var end = new[] { cut, path }.Where(i => i > 0).DefaultIfEmpty(message.Length).Min();
        return message[..end].TrimEnd(' ', '|', '.');
    }

    private static string? FieldOf(string? path) =>
        path is { Length: > 2 } && path.StartsWith("$.", StringComparison.Ordinal) ? JsonName(path[2..].Split('.', '[')[0]) : null;

    private static Dictionary<string, (Type, bool)> Fields()
    {
        var context = new NullabilityInfoContext();
        return typeof(FineTuneRequest).GetConstructors()[0].GetParameters().ToDictionary(
            p => JsonName(p.Name!),
            p => (p.ParameterType, Nullable.GetUnderlyingType(p.ParameterType) is not null || context.Create(p).WriteState == NullabilityState.Nullable),
            StringComparer.OrdinalIgnoreCase);
    }

    private static string JsonName(string name) => s_fieldNames.TryGetValue(name, out var known) ? known : JsonNamingPolicy.CamelCase.ConvertName(name);

    private static void Add(Dictionary<string, string[]> problems, string field, string message) =>
        problems[field] = [.. problems.GetValueOrDefault(field) ?? [], message];

    /// <summary>A value for a message, cut short and with control characters shown as '?'.</summary>
    private static string Quote(string value)
    {
        var shown = value.Length <= MaxQuotedChars ? value : string.Concat(value.AsSpan(0, MaxQuotedChars), "...");
        return shown.Any(char.IsControl) ? new string([.. shown.Select(c => char.IsControl(c) ? '?' : c)]) : shown;
    }
}
