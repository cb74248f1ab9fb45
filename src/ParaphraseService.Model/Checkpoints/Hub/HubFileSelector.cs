using System.Text.Json;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// Picks the files a GPT-J checkpoint needs out of a repository listing, the same way whether the listing comes from
/// the Hub (online) or from a cached snapshot folder (offline), so both agree on what "complete" means.
/// </summary>
internal static class HubFileSelector
{
    public const string ConfigFile = "config.json";

    // The order a downloaded folder is loaded in (CheckpointFiles, Transformers' order), so the files fetched are the
    // ones loading will open.
    private static readonly (string File, bool IsIndex)[] WeightChoices =
        [.. CheckpointFiles.PreferenceOrder.Select(f => (f, f.EndsWith(".index.json", StringComparison.Ordinal)))];

    /// <param name="available">Every file path in the repository (forward slashes).</param>
    /// <param name="where">Names the repository and commit in error messages.</param>
    /// <exception cref="HubException">No config.json or no weights, listing what the repository has.</exception>
    public static HubFileSelection Select(IReadOnlyCollection<string> available, string where)
    {
        var set = available.ToHashSet(StringComparer.Ordinal);
        if (!set.Contains(ConfigFile))
            throw new HubException(HubErrorKind.UnsupportedRepository,
                $"{where} has no {ConfigFile}, so it is not a Transformers checkpoint. It has: {Listing(set)}.");

        var weights = WeightChoices.FirstOrDefault(c => set.Contains(c.File));
        if (weights.File is null)
            throw new HubException(HubErrorKind.UnsupportedRepository,
                $"{where} has no weights this service can load (looked for {string.Join(", ", WeightChoices.Select(c => c.File))}). "
                + $"It has: {Listing(set)}.");

        List<string> files = [ConfigFile, .. CheckpointFiles.TokenizerFiles.Where(set.Contains), weights.File];
        return new HubFileSelection(files, weights.IsIndex ? weights.File : null);
    }

    /// <summary>The shard files a <c>*.index.json</c> maps tensors to, each once, in order of first use.</summary>
    /// <exception cref="HubException">The index is malformed, empty, or names a path that could leave the snapshot.</exception>
    public static IReadOnlyList<string> ReadShards(string indexPath, string indexName, string where)
    {
        // A named pipe would block the read until something writes to it.
        if (RegularFiles.Problem(indexPath) is { } problem)
            throw new HubException(HubErrorKind.UnsupportedRepository, $"{indexName} of {where} cannot be used: {indexPath} is {problem}.");
        try
        {
            using var stream = File.OpenRead(indexPath);
            using var json = JsonDocument.Parse(stream);
            if (!json.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw Bad("it has no \"weight_map\" object");

            var shards = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                var shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : throw Bad($"tensor '{entry.Name}' maps to a non-string");
                if (!IsSafeRelativePath(shard))
                    throw Bad($"tensor '{entry.Name}' maps to the unsafe path '{shard}'");
                if (seen.Add(shard))
                    shards.Add(shard);
            }

            return shards.Count > 0 ? shards : throw Bad("its weight_map is empty");
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.UnsupportedRepository, $"{indexName} of {where} is not valid JSON: {e.Message}", e);
        }

        HubException Bad(string why) => new(HubErrorKind.UnsupportedRepository, $"{indexName} of {where} cannot be used: {why}.");
    }

    /// <summary>
    /// A repository path that stays inside the snapshot folder: relative, forward slashes, no empty, '.' or '..'
    /// segments, no characters that mean something to Windows paths.
    /// </summary>
    public static bool IsSafeRelativePath(string path) =>
        path.Length is > 0 and <= 1024
        && path.IndexOfAny(['\\', ':', '\0']) < 0
        && path.Split('/').All(s => s.Length > 0 && s is not "." and not "..");

    private static string Listing(IReadOnlyCollection<string> files)
    {
        if (files.Count == 0)
            return "no files";
        const int shown = 40;
        var sorted = files.Order(StringComparer.Ordinal).ToList();
        var text = string.Join(", ", sorted.Take(shown));
        return sorted.Count > shown ? $"{text} and {sorted.Count - shown} more" : text;
    }
}
