using System.Text.Json;
using ParaphraseService.Model.Checkpoints;

namespace ParaphraseService.Model.Core;

/// <summary>Reading a family's config.json into its record.</summary>
internal static class ConfigFile
{
    /// <summary>The file's model_type, or null when it has none.</summary>
    public static string? ModelType(string path)
    {
        try
        {
            using var json = JsonDocument.Parse(ReadText(path));
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
        var text = ReadText(path);
        T? config;
        try
        {
            config = JsonSerializer.Deserialize<T>(text);
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

    /// <summary>The text of a config.json, refused with its path when it is missing or not a regular file.</summary>
    public static string ReadText(string path)
    {
        if (!File.Exists(path))
            throw new InvalidDataException($"{path}: config.json not found.");
        // A named pipe would block the read until something writes to it.
        if (RegularFiles.Problem(path) is { } problem)
            throw new InvalidDataException($"{path}: {problem}.");
        return File.ReadAllText(path);
    }
}
