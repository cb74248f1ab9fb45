using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>Name, stored dtype and shape of one tensor in a checkpoint, known before its bytes are read.</summary>
public sealed record CheckpointTensorInfo(string Name, ScalarType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A checkpoint opened for reading tensor by tensor (one file or a sharded set), so a loader can convert or
/// quantize each tensor as it arrives and never hold the whole full-precision model.
/// </summary>
public interface ICheckpointSource : IDisposable
{
    /// <summary>Every tensor the checkpoint holds, by its state-dict key.</summary>
    IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors { get; }

    /// <summary>Reads one tensor on the CPU in its stored dtype. The caller owns (and disposes) the result.</summary>
    /// <exception cref="CheckpointException">The file is truncated, corrupt or the dtype unsupported.</exception>
    Tensor Read(string name);
}

/// <summary>A checkpoint that cannot be used, with a message that names the file and the problem.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);
