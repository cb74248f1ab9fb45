namespace ParaphraseService.Model.Loading;

/// <summary>Where a <see cref="SyntheticCheckpoint"/> write stands after a tensor has been written.</summary>
/// <param name="TensorsWritten">Tensors written so far (1-based count), out of <paramref name="TensorCount"/>.</param>
/// <param name="LastTensor">The tensor just written.</param>
/// <param name="Shard">The 1-based shard file it went into, out of <paramref name="ShardCount"/>.</param>
/// <param name="BytesWritten">Tensor bytes written so far (headers and tokenizer files not counted).</param>
/// <param name="TotalBytes">Tensor bytes of the whole checkpoint: the index's <c>total_size</c>.</param>
/// <param name="ShardComplete">The tensor was the shard's last and the shard file is complete under its name.</param>
public sealed record SyntheticCheckpointProgress(
    int TensorsWritten, int TensorCount, string LastTensor, int Shard, int ShardCount, long BytesWritten, long TotalBytes,
    TimeSpan Elapsed, bool ShardComplete)
{
    /// <summary>Average tensor bytes written per second since the write began.</summary>
    public double BytesPerSecond => Elapsed > TimeSpan.Zero ? BytesWritten / Elapsed.TotalSeconds : 0;
}
