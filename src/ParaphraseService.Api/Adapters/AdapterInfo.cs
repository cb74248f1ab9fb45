namespace ParaphraseService.Api.Adapters;

/// <summary>
/// One stored adapter as <c>GET /adapters</c> shows it: what its <c>adapter_config.json</c> and
/// <c>paraphrase_adapter.json</c> say, its size on disk and how many requests it has served since the service started.
/// </summary>
/// <param name="BaseModel">The config's base_model_name_or_path (what it was trained on, as its trainer wrote it).</param>
/// <param name="TargetModules">The config's target_modules list; null when it is a pattern or absent.</param>
/// <param name="TargetModulesPattern">The config's target_modules string: a regex or "all-linear".</param>
/// <param name="Origin">"upload", "fine-tune", or "built-in" (the model's own, read-only); null when the folder has no metadata file.</param>
/// <param name="Problem">Why the folder's files could not be read (a folder edited by hand); null when they could.</param>
/// <param name="Loaded">Whether it is resident on the model now (loaded on first use, unloaded least recently used first).</param>
public sealed record AdapterInfo(
    string Name,
    string? BaseModel,
    int? Rank,
    double? Alpha,
    bool? UseRslora,
    IReadOnlyList<string>? TargetModules,
    string? TargetModulesPattern,
    long SizeBytes,
    DateTimeOffset? Created,
    string? Origin,
    string? PromptTemplate,
    long RequestsServed,
    string? Problem = null,
    bool Loaded = false);
