using System.Buffers.Binary;
using System.Text;

namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>
/// Hand-made torch.save archives: a stored zip of <c>archive/data.pkl</c> and <c>archive/data/{key}</c> entries, with a
/// protocol-2 pickle of the state dict, for sizes and views torch itself would never write.
/// </summary>
internal static class TorchCheckpointBytes
{
    /// <summary>One tensor: a float32 view (offset, shape, stride) into storage <paramref name="StorageKey"/> of <paramref name="StorageElements"/> elements.</summary>
    public sealed record Tensor(string Name, string StorageKey, long StorageElements, long Offset, long[] Shape, long[] Stride);

    /// <summary>A contiguous float32 tensor with a storage of its own, named after the tensor.</summary>
    public static Tensor Contiguous(string name, params long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            stride[i] = step;
            step *= shape[i];
        }
        return new Tensor(name, name, step, 0, shape, stride);
    }

    /// <summary>The archive: data.pkl describing <paramref name="tensors"/>, then one entry per storage with the given bytes.</summary>
    public static byte[] Archive(IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, byte[]> storages,
        Func<string, int, (long Stored, long Uncompressed)>? centralSizes = null, bool dataDescriptors = false) =>
        Zip([("archive/data.pkl", StateDictPickle(tensors)), ("archive/byteorder", "little"u8.ToArray()),
            .. storages.Select(s => ($"archive/data/{s.Key}", s.Value))], centralSizes, dataDescriptors);

    /// <summary>Float32 bytes 0, 1, 2, ... for a storage of <paramref name="elements"/> elements.</summary>
    public static byte[] Ramp(int elements, float start = 0)
    {
        var bytes = new byte[elements * 4];
        for (var i = 0; i < elements; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), start + i);
        }
        return bytes;
    }

    /// <summary>
    /// <c>OrderedDict</c> of <c>_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())</c>,
    /// as torch.save pickles it (protocol 2, integers as LONG1).
    /// </summary>
    public static byte[] StateDictPickle(IEnumerable<Tensor> tensors)
    {
        var pickle = new List<byte>();
        void Add(string text) => pickle.AddRange(Encoding.Latin1.GetBytes(text));
        void Str(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            pickle.Add((byte)'X');
            pickle.AddRange(BitConverter.GetBytes(bytes.Length));
            pickle.AddRange(bytes);
        }
        void Long(long value)
        {
            pickle.AddRange([0x8a, 8]);
            pickle.AddRange(BitConverter.GetBytes(value));
        }

        Add("\u0080\u0002ccollections\nOrderedDict\n)R(");
        foreach (var tensor in tensors)
        {
            Str(tensor.Name);
            Add("ctorch._utils\n_rebuild_tensor_v2\n((");
            Str("storage");
            Add("ctorch\nFloatStorage\n");
            Str(tensor.StorageKey);
            Str("cpu");
            Long(tensor.StorageElements);
            Add("tQ");
            Long(tensor.Offset);
            Add("(");
            foreach (var size in tensor.Shape)
            {
                Long(size);
            }
            Add("t(");
            foreach (var step in tensor.Stride)
            {
                Long(step);
            }
            Add("t\u0089ccollections\nOrderedDict\n)RtR");
        }
        Add("u.");
        return [.. pickle];
    }

    /// <summary>
    /// A zip of stored entries without ZIP64 (CRCs left 0: the reader does not check them). Sizes are in the local headers,
    /// or with <paramref name="dataDescriptors"/> in a descriptor after the data with 0 in the local header, as torch.save writes.
    /// <paramref name="centralSizes"/> may change the (stored, uncompressed) sizes the central directory records for an entry.
    /// </summary>
    public static byte[] Zip(IReadOnlyList<(string Name, byte[] Data)> entries,
        Func<string, int, (long Stored, long Uncompressed)>? centralSizes = null, bool dataDescriptors = false)
    {
        using var file = new MemoryStream();
        var central = new MemoryStream();
        foreach (var (name, data) in entries)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            var localOffset = (uint)file.Position;
            var local = new byte[30].AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(local, 0x04034b50);
            BinaryPrimitives.WriteUInt16LittleEndian(local[4..], 20);
            BinaryPrimitives.WriteUInt16LittleEndian(local[6..], (ushort)(dataDescriptors ? 8 : 0));
            BinaryPrimitives.WriteUInt32LittleEndian(local[18..], dataDescriptors ? 0 : (uint)data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(local[22..], dataDescriptors ? 0 : (uint)data.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(local[26..], (ushort)nameBytes.Length);
            file.Write(local);
            file.Write(nameBytes);
            file.Write(data);
            if (dataDescriptors)
            {
                var descriptor = new byte[16].AsSpan();
                BinaryPrimitives.WriteUInt32LittleEndian(descriptor, 0x08074b50);
                BinaryPrimitives.WriteUInt32LittleEndian(descriptor[8..], (uint)data.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(descriptor[12..], (uint)data.Length);
                file.Write(descriptor);
            }

            var header = new byte[46].AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(header, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 20);
            BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 20);
            BinaryPrimitives.WriteUInt16LittleEndian(header[8..], (ushort)(dataDescriptors ? 8 : 0));
            var (stored, uncompressed) = centralSizes?.Invoke(name, data.Length) ?? (data.Length, data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header[20..], (uint)stored);
            BinaryPrimitives.WriteUInt32LittleEndian(header[24..], (uint)uncompressed);
            BinaryPrimitives.WriteUInt16LittleEndian(header[28..], (ushort)nameBytes.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header[42..], localOffset);
            central.Write(header);
            central.Write(nameBytes);
        }
        var directoryOffset = (uint)file.Position;
        central.Position = 0;
        central.CopyTo(file);
        Span<byte> end = stackalloc byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], (ushort)entries.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], (ushort)entries.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)central.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], directoryOffset);
        file.Write(end);
        return file.ToArray();
    }
}
