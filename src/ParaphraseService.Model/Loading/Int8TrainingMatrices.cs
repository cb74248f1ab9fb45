using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// The int8 matrices fbgemm layers need to pass gradients, derived again from the checkpoint the model was loaded from
/// (quantized the same way, so the same values) while a fine-tune runs, and freed after: serving alone keeps one byte
/// per weight, training two.
/// </summary>
public static class Int8TrainingMatrices
{
    /// <summary>The int8 layers that cannot pass gradients yet, with their checkpoint keys, in model order.</summary>
    public static IReadOnlyList<(string Key, Int8Linear Layer)> Missing(nn.Module model) => model.named_modules()
        .Where(m => m.module is Int8Linear { SupportsTraining: false })
        .Select(m => (StateDictLoader.CheckpointKey(m.name) + ".weight", (Int8Linear)m.module))
        .ToList();

    /// <summary>Reads one layer's weight from <paramref name="checkpoint"/> and attaches its int8 matrix.</summary>
    /// <exception cref="CheckpointException">The checkpoint no longer holds that weight as it did.</exception>
    public static void Attach(Int8Linear layer, string key, ICheckpointSource checkpoint)
    {
        using (NewDisposeScope())
        using (no_grad())
        {
            if (!checkpoint.Tensors.TryGetValue(key, out var info) || !info.Shape.SequenceEqual(layer.WeightShape))
                throw new CheckpointException($"The model's checkpoint no longer holds {key} [{string.Join(", ", layer.WeightShape)}]: it changed since loading.");
            var stored = checkpoint.Read(key);
            var q = stored.dtype == ScalarType.Int8 ? stored : RowwiseInt8.Quantize(stored, CPU).Q;
            layer.AttachTrainingMatrix(q);
        }
        // As while loading: the conversion buffers just freed go back to the system, or they pile up layer after layer.
        ProcessMemory.ReleaseFreedMemory();
    }

    /// <summary>Frees every attached training matrix (and gives the memory back to the system); the count freed.</summary>
    public static int Release(nn.Module model)
    {
        var released = model.modules().OfType<Int8Linear>().Count(layer => layer.ReleaseTrainingMatrix());
        if (released > 0) ProcessMemory.ReleaseFreedMemory();
        return released;
    }
}
