using System.Text;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// A <c>pytorch_model.bin</c> written by <c>torch.save</c> (torch 1.6 and later): a zip holding <c>{archive}/data.pkl</c>,
/// the pickled state dict, and one uncompressed entry <c>{archive}/data/{key}</c> per storage. Opening reads the zip
/// directory and data.pkl (through a restricted unpickler that never runs pickled code) and checks every tensor
/// against its storage; <see cref="Read"/> then reads just the bytes one tensor covers. <see cref="Read"/> may be
/// called from several threads.
/// </summary>
public sealed class PyTorchCheckpointReader : ICheckpointSource
{
    // data.pkl holds only tensor descriptions (~100 bytes each); anything near this size is not a state dict.
    private const long MaxPickleBytes = 256L << 20;

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, StoredTensor> _stored = new(StringComparer.Ordinal);

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="CheckpointException">Missing, truncated, corrupt, legacy-format or not a plain state dict.</exception>
    public PyTorchCheckpointReader(string path)
    {
        Path = path;
        _file = CheckpointFileHandles.OpenRead(path);
        try
        {
            Tensors = Open();
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors { get; }

    public Tensor Read(string name)
    {
        ObjectDisposedException.ThrowIf(_file.IsClosed, this);
        if (!_stored.TryGetValue(name, out var stored))
        {
            throw new CheckpointException($"{Path}: no tensor named '{name}'");
        }
        var tensor = stored.Tensor;
        var dtype = tensor.Storage.DType;
        if (stored.Span == 0)
        {
            return empty(tensor.Shape, dtype);
        }
        // Read only the elements between the view's first and last, then lay the view over them.
        using var covered = empty(stored.Span, dtype);
        TensorBytes.ReadInto(_file, stored.DataOffset + tensor.StorageOffset * TensorBytes.ElementSize(dtype), covered, Path, name);
        if (IsContiguous(tensor.Shape, tensor.Stride))
        {
            return covered.reshape(tensor.Shape);
        }
        using var view = covered.as_strided(tensor.Shape, tensor.Stride, 0);
        return view.contiguous();
    }

    public void Dispose() => _file.Dispose();

    private OrderedDictionary<string, CheckpointTensorInfo> Open()
    {
        CheckFormat();
        var zip = ZipDirectory.Read(_file, Path);
        var pickle = zip.Entries.Values.Where(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.Count(c => c == '/') == 1).ToList();
        if (pickle.Count != 1)
        {
            throw new CheckpointException($"{Path}: zip archive without a single <archive>/data.pkl entry ({pickle.Count} found): not a torch.save checkpoint");
        }
        var prefix = pickle[0].Name[..^"data.pkl".Length];
        if (zip.Entries.TryGetValue(prefix + "byteorder", out var byteOrderEntry))
        {
            var byteOrder = Encoding.ASCII.GetString(zip.ReadAll(byteOrderEntry, 16));
            if (byteOrder != "little")
            {
                throw new CheckpointException($"{Path}: stored with byteorder '{byteOrder}'; only little-endian checkpoints are supported " +
                    "(a big-endian one was saved on a big-endian machine: re-save it on a little-endian one)");
            }
        }

        var stateDict = TorchStateDictUnpickler.Load(zip.ReadAll(pickle[0], MaxPickleBytes), $"{Path}: {pickle[0].Name}");
        var storageOffsets = new Dictionary<string, long>(StringComparer.Ordinal);
        var tensors = new OrderedDictionary<string, CheckpointTensorInfo>(StringComparer.Ordinal);
        foreach (var (name, tensor) in stateDict)
        {
            var storage = tensor.Storage;
            if (!storageOffsets.TryGetValue(storage.Key, out var dataOffset))
            {
                dataOffset = StorageDataOffset(zip, prefix, storage);
                storageOffsets.Add(storage.Key, dataOffset);
            }
            _stored.Add(name, new StoredTensor(tensor, dataOffset, CoveredElements(name, tensor)));
            tensors.Add(name, new CheckpointTensorInfo(name, storage.DType, tensor.Shape));
        }
        return tensors;
    }

    private void CheckFormat()
    {
        Span<byte> magic = stackalloc byte[4];
        int read;
        try
        {
            read = RandomAccess.Read(_file, magic, 0);
        }
        catch (IOException e)
        {
            throw new CheckpointException($"{Path}: read failed: {e.Message}", e);
        }
        if (read >= 4 && magic.SequenceEqual("PK\u0003\u0004"u8))
        {
            return;
        }
        if (read >= 1 && magic[0] == 0x80)
        {
            throw new CheckpointException($"{Path}: legacy PyTorch format (a pickle stream, written by torch<1.6 or with " +
                "_use_new_zipfile_serialization=False); re-save with torch>=1.6 or convert to safetensors");
        }
        throw new CheckpointException(read == 0
            ? $"{Path}: file is empty"
            : $"{Path}: not a PyTorch checkpoint: neither a torch.save zip archive nor a legacy pickle");
    }

    private long StorageDataOffset(ZipDirectory zip, string prefix, PickledStorage storage)
    {
        var entryName = $"{prefix}data/{storage.Key}";
        if (!zip.Entries.TryGetValue(entryName, out var entry))
        {
            throw new CheckpointException($"{Path}: data.pkl refers to storage '{storage.Key}' but the archive has no entry '{entryName}'");
        }
        // The element count comes from data.pkl: in 64 bits, 2**62 + 1 floats would wrap to 4 bytes and pass against a
        // 4-byte entry, and the views over it would read the next entry's bytes as weights.
        var needed = (Int128)storage.ElementCount * TensorBytes.ElementSize(storage.DType);
        if (entry.Size < needed)
        {
            throw new CheckpointException($"{Path}: entry '{entryName}' is {entry.Size} bytes but its {storage.DType} storage " +
                $"of {storage.ElementCount} elements needs {needed}");
        }
        return zip.DataOffset(entry);
    }

    /// <summary>How many storage elements the view spans from its first element to its last, checked against the storage.</summary>
    private long CoveredElements(string name, PickledTensor tensor)
    {
        var shape = tensor.Shape;
        var stride = tensor.Stride;
        if (shape.Length != stride.Length || tensor.StorageOffset < 0 || stride.Any(s => s < 0) || TensorBytes.ElementCount(shape) is null)
        {
            throw new CheckpointException($"{Path}: tensor '{name}' has an invalid view: offset {tensor.StorageOffset}, " +
                $"size [{string.Join(", ", shape)}], stride [{string.Join(", ", stride)}]");
        }
        if (shape.Contains(0))
        {
            return 0;
        }
        var last = LastElement(tensor.StorageOffset, shape, stride);
        if (last is null || last >= tensor.Storage.ElementCount)
        {
            throw new CheckpointException($"{Path}: tensor '{name}' (offset {tensor.StorageOffset}, size [{string.Join(", ", shape)}], " +
                $"stride [{string.Join(", ", stride)}]) reaches past the end of its {tensor.Storage.ElementCount}-element storage '{tensor.Storage.Key}'");
        }
        return last.Value - tensor.StorageOffset + 1;
    }

    /// <summary>Storage index of the view's last element, or null when it overflows.</summary>
    private static long? LastElement(long offset, long[] shape, long[] stride)
    {
        try
        {
            var last = offset;
            for (var i = 0; i < shape.Length; i++)
            {
                last = checked(last + (shape[i] - 1) * stride[i]);
            }
            return last;
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    private static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected)
            {
                return false;
            }
            expected *= shape[i];
        }
        return true;
    }

    private sealed record StoredTensor(PickledTensor Tensor, long DataOffset, long Span);
}
