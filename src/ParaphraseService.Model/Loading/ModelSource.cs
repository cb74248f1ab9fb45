using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Model.Loading;

/// <summary>Turns what a user names as the model (a folder, a hub id, "demo" or "demo-random") into a loaded model.</summary>
public static class ModelSource
{
    /// <param name="source">"demo" (<see cref="DemoModel"/>), "demo-random" (<see cref="RandomDemoModel"/>), an existing folder, or a hub id like <c>EleutherAI/gpt-j-6b@float16</c>.</param>
    /// <param name="hubOptions">Hub settings; null reads HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_OFFLINE from the environment.</param>
    public static async Task<LoadedModel> LoadAsync(
        string source, ModelLoadOptions options, IProgress<HubDownloadProgress>? progress, CancellationToken cancellationToken,
        HubOptions? hubOptions = null)
    {
        options.Validate(); // a mistyped setting is refused before a download of gigabytes, not after
        if (string.Equals(source, DemoModel.SourceName, StringComparison.OrdinalIgnoreCase))
            return DemoModel.Load(options);
        if (string.Equals(source, RandomDemoModel.SourceName, StringComparison.OrdinalIgnoreCase))
            return RandomDemoModel.Load(options);
        var folder = await ResolveFolderAsync(source, progress, cancellationToken, hubOptions);
        return ModelLoader.LoadFolder(folder, options, sourceName: Directory.Exists(source) ? source : HubModelId.Parse(source).ToString());
    }

    /// <summary>The local folder of a model folder or hub id (downloaded into the cache if needed).</summary>
    public static async Task<string> ResolveFolderAsync(
        string source, IProgress<HubDownloadProgress>? progress, CancellationToken cancellationToken, HubOptions? hubOptions = null)
    {
        if (Directory.Exists(source))
            return source;
        if (LooksLikePath(source))
            throw new DirectoryNotFoundException($"Model folder '{source}' does not exist.");
        if (!HubModelId.TryParse(source, out var id, out var error))
            throw new ArgumentException($"Model '{source}' is not a folder, not 'demo' or 'demo-random', and not a hub id: {error}");
        using var http = HubClient.CreateHttpClient();
        var hub = new HubClient(http, hubOptions ?? HubOptions.FromEnvironment());
        return await hub.DownloadModelAsync(id, progress, cancellationToken);
    }

    // "Org/Name" is both a valid relative path and a hub id; anything else with path syntax can only be a folder.
    private static bool LooksLikePath(string source) =>
        Path.IsPathRooted(source) || source.StartsWith('.') || source.StartsWith('~') || source.Contains('\\') || source.Count(c => c == '/') > 1;
}
