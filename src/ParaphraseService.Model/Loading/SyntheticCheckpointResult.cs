namespace ParaphraseService.Model.Loading;

/// <summary>A model folder written by <see cref="SyntheticCheckpoint"/>.</summary>
/// <param name="Folder">Full path of the published folder.</param>
/// <param name="Files">Names of the files in it, in the order they were written.</param>
/// <param name="ShardFiles">The weight files: one <c>model.safetensors</c>, or the <c>model-0000k-of-0000N.safetensors</c> shards.</param>
/// <param name="TensorBytes">Tensor bytes over all weight files (the index's <c>total_size</c>).</param>
/// <param name="FolderBytes">Size of all files in the folder.</param>
public sealed record SyntheticCheckpointResult(
    string Folder, IReadOnlyList<string> Files, IReadOnlyList<string> ShardFiles, int TensorCount, long TensorBytes, long FolderBytes, TimeSpan Elapsed);
