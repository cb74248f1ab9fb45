using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ParaphraseService.Model.Checkpoints;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// Reads typed fields out of one JSON object, recording a problem (instead of throwing) for each field of the wrong
/// type, so a file's every mistake is reported together. Fields never asked for are left in <see cref="Remaining"/>.
/// </summary>
internal sealed class JsonFields
{
    /// <summary>Runs a parser that collects problems; any problem (or no result) is one <see cref="AdapterValidationException"/>.</summary>
    public static T ParseOrThrow<T>(string json, string source, Func<string, List<string>, T?> parse) where T : class
    {
        var problems = new List<string>();
        var parsed = parse(json, problems);
        if (parsed is null || problems.Count > 0)
            throw new AdapterValidationException(source, problems);
        return parsed;
    }

    /// <summary>A JSON file's text; a missing or unreadable file is an <see cref="AdapterValidationException"/>.</summary>
    public static string ReadFile(string path)
    {
        // A named pipe would block the read until something writes to it.
        if (RegularFiles.Problem(path) is { } problem)
        {
            throw new AdapterValidationException(path, problem);
        }
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new AdapterValidationException(path, "file not found", e);
        }
        catch (IOException e)
        {
            throw new AdapterValidationException(path, $"cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Indented like Python's json.dumps(indent=2); regexes and templates written without \u escapes.</summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly JsonSerializerOptions s_compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly Dictionary<string, JsonElement> _fields = new(StringComparer.Ordinal);
    private readonly List<string> _problems;

    public JsonFields(JsonElement root, List<string> problems)
    {
        _problems = problems;
        foreach (var property in root.EnumerateObject())
        {
            // JSON allows repeated keys; Python's json keeps the last one, and so do we.
            _fields[property.Name] = property.Value.Clone();
        }
    }

    /// <summary>A JSON object of the given fields, each written by its own writer, in the dictionary's order.</summary>
    public static string Write(IEnumerable<KeyValuePair<string, Action<Utf8JsonWriter>>> fields)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, WriterOptions))
        {
            writer.WriteStartObject();
            foreach (var (name, write) in fields)
            {
                writer.WritePropertyName(name);
                write(writer);
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Parses <paramref name="json"/> as an object; null (with a problem recorded) when it is not one.</summary>
    public static JsonFields? Parse(string json, List<string> problems)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                problems.Add($"not a JSON object but a {document.RootElement.ValueKind}");
                return null;
            }
            return new JsonFields(document.RootElement, problems);
        }
        catch (JsonException e)
        {
            problems.Add($"not valid JSON: {e.Message}");
            return null;
        }
    }

    /// <summary>The fields not read yet.</summary>
    public IReadOnlyDictionary<string, JsonElement> Remaining => _fields;

    public bool Has(string name) => _fields.ContainsKey(name);

    public string? String(string name, string? missing)
    {
        if (!Take(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return missing;
        }
        if (value.ValueKind == JsonValueKind.String)
        {
            return value.GetString();
        }
        return Wrong(name, "a string", value, missing);
    }

    public bool Bool(string name, bool missing)
    {
        if (!Take(name, out var value))
        {
            return missing;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => Wrong(name, "true or false", value, missing),
        };
    }

    public int Int(string name, int missing)
    {
        if (!Take(name, out var value))
        {
            return missing;
        }
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var result)
            ? result
            : Wrong(name, "an integer", value, missing);
    }

    public double Number(string name, double missing)
    {
        if (!Take(name, out var value))
        {
            return missing;
        }
        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var result) && double.IsFinite(result)
            ? result
            : Wrong(name, "a number", value, missing);
    }

    /// <summary>A list of strings, or null when the field is absent or null.</summary>
    public IReadOnlyList<string>? StringList(string name)
    {
        if (!Take(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return ReadStringList(name, value);
    }

    /// <summary>A list of strings or a single string (PEFT's target_modules), or null when absent or null.</summary>
    public PeftTargetModules? TargetModules(string name)
    {
        if (!Take(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind == JsonValueKind.String)
        {
            try
            {
                return PeftTargetModules.FromPattern(value.GetString()!);
            }
            catch (ArgumentException e)
            {
                _problems.Add($"{name} '{value.GetString()}' is not a valid regular expression: {e.Message}");
                return null;
            }
        }
        var names = ReadStringList(name, value, "a list of module names or a regular expression string");
        if (names is null)
        {
            return null;
        }
        if (names.Any(string.IsNullOrEmpty))
        {
            _problems.Add($"{name} contains an empty name");
            return null;
        }
        return PeftTargetModules.FromNames(names);
    }

    /// <summary>An object, or null when the field is absent or null.</summary>
    public JsonElement? Object(string name)
    {
        if (!Take(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.Object ? value : Wrong<JsonElement?>(name, "an object", value, null);
    }

    /// <summary>Takes the raw value of a field, whatever its type.</summary>
    public bool Take(string name, out JsonElement value) => _fields.Remove(name, out value);

    public T Wrong<T>(string name, string expected, JsonElement value, T fallback)
    {
        _problems.Add($"{name} must be {expected}, not {Describe(value)}");
        return fallback;
    }

    /// <summary>A short rendering of a value for messages: compact JSON, whatever the file's layout, cut when long.</summary>
    public static string Describe(JsonElement value)
    {
        var text = JsonSerializer.Serialize(value, s_compact);
        return text.Length <= 60 ? text : text[..57] + "...";
    }

    private List<string>? ReadStringList(string name, JsonElement value, string expected = "a list of strings")
    {
        if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(item => item.ValueKind != JsonValueKind.String))
        {
            return Wrong<List<string>?>(name, expected, value, null);
        }
        return value.EnumerateArray().Select(item => item.GetString()!).ToList();
    }
}
