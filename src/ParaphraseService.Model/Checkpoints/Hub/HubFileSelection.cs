namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>The files of a repository a GPT-J loader needs, before the weight index (if any) has been read.</summary>
/// <param name="Files">config.json, the tokenizer files present, and the weights file or weights index.</param>
/// <param name="WeightIndex">The <c>*.index.json</c> among <see cref="Files"/> whose shards must follow, or null.</param>
internal sealed record HubFileSelection(IReadOnlyList<string> Files, string? WeightIndex);
