using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// Moves raw tensor bytes between files and CPU tensors without a managed copy: <see cref="Tensor.bytes"/> is a span
/// over the tensor's own memory, so file reads land directly in the storage LibTorch allocated.
/// </summary>
internal static class TensorBytes
{
    /// <summary>A span is int-sized, so tensors over this size are moved in slices.</summary>
    public const int DefaultChunkBytes = 1 << 30;

    /// <summary>Bytes per element of the dtypes our checkpoint formats carry; 0 for any other.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => 0,
    };

    /// <summary>Product of the dimensions, or null when a dimension is negative or the product overflows.</summary>
    public static long? ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                return null;
            }
            try
            {
                count = checked(count * dim);
            }
            catch (OverflowException)
            {
                return null;
            }
        }
        return count;
    }

    /// <summary>Fills a contiguous CPU tensor with the bytes stored at <paramref name="fileOffset"/>.</summary>
    /// <exception cref="CheckpointException">The file ends early or cannot be read.</exception>
    public static void ReadInto(SafeFileHandle file, long fileOffset, Tensor destination, string path, string tensorName,
        int chunkBytes = DefaultChunkBytes)
    {
        EnsureLittleEndian();
        ForEachSlice(destination, chunkBytes, (slice, sliceOffset) =>
        {
            var span = slice.bytes;
            var done = 0;
            while (done < span.Length)
            {
                int read;
                try
                {
                    read = RandomAccess.Read(file, span[done..], fileOffset + sliceOffset + done);
                }
                catch (IOException e)
                {
                    throw new CheckpointException($"{path}: reading tensor '{tensorName}' failed: {e.Message}", e);
                }
                if (read == 0)
                {
                    throw new CheckpointException(
                        $"{path}: file is truncated: tensor '{tensorName}' needs bytes up to offset " +
                        $"{fileOffset + destination.NumberOfElements * destination.ElementSize} but the file ends at " +
                        $"{fileOffset + sliceOffset + done}");
                }
                done += read;
            }
        });
    }

    /// <summary>Writes the bytes of a contiguous CPU tensor to <paramref name="stream"/>.</summary>
    public static void WriteTo(Stream stream, Tensor source, int chunkBytes = DefaultChunkBytes)
    {
        EnsureLittleEndian();
        ForEachSlice(source, chunkBytes, (slice, _) => stream.Write(slice.bytes));
    }

    private static void ForEachSlice(Tensor tensor, int chunkBytes, Action<Tensor, long> action)
    {
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous())
        {
            throw new ArgumentException("Raw tensor bytes need a contiguous CPU tensor.", nameof(tensor));
        }
        var elementSize = tensor.ElementSize;
        var count = tensor.NumberOfElements;
        if (count == 0)
        {
            return;
        }
        if (count * elementSize <= chunkBytes)
        {
            action(tensor, 0);
            return;
        }
        var sliceElements = Math.Max(1, chunkBytes / elementSize);
        using var flat = tensor.view(-1);
        for (long start = 0; start < count; start += sliceElements)
        {
            using var slice = flat.narrow(0, start, Math.Min(sliceElements, count - start));
            action(slice, start * elementSize);
        }
    }

    // Both formats store little-endian data and we copy bytes verbatim.
    private static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Checkpoint files are little-endian; this machine is not.");
        }
    }
}
