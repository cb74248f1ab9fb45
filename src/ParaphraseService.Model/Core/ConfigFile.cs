using System.Text.Json;

namespace ParaphraseService.Model.Core;

/// <summary>Reading a family's config.json into its record.</summary>
internal static class ConfigFile
{
    /// <summary>The file's model_type, or null when it has none.</summary>
    public static string? ModelType(string path)
    {
        if (!File.Exists(path))
            throw new InvalidDataException($"{path}: config.json not found.");
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            if (json.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: config.json does not hold a JSON object.");
            return json.RootElement.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString() : null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid config.json: {e.Message}", e);
        }
    }

    /// <summary>Reads and validates a config.json; every problem is reported with the file's path.</summary>
    public static T Load<T>(string path, string familyName) where T : class, ICausalLMConfig
    {
        if (!File.Exists(path))
            throw new InvalidDataException($"{path}: config.json not found.");
        T? config;
        try
        {
            config = JsonSerializer.Deserialize<T>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid {familyName} config: {e.Message}", e);
        }
        if (config is null)
            throw new InvalidDataException($"{path}: not a valid {familyName} config: the file holds null.");
        config.Validate(path);
        return config;
    }
}
