using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// Writes <c>.safetensors</c> files the way the reference implementation does: header padded with spaces to a multiple
/// of 8 bytes, tensors laid out by descending element size then name so every tensor starts aligned to its element
/// size. The header is computed from the declared tensors before any data exists, so tensors can be produced and
/// written one at a time and a file larger than memory can be written. The file appears under its name only when
/// complete: it is written to <c>path.tmp</c> and renamed.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes the declared <paramref name="tensors"/>, calling <paramref name="produce"/> once for each, in the file's
    /// layout order (descending element size, then ordinal name). The writer disposes every tensor
    /// <paramref name="produce"/> returns, so it can hand over freshly read or converted tensors.
    /// </summary>
    /// <exception cref="ArgumentException">Names are empty or repeated, or a dtype or shape cannot be stored.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="produce"/> returned a tensor of another dtype or shape.</exception>
    public static void Write(string path, IReadOnlyList<CheckpointTensorInfo> tensors,
        Func<CheckpointTensorInfo, Tensor> produce, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(produce);
        var layout = Layout(tensors);
        var header = Header(layout, metadata);
        var dataLength = layout.Count == 0 ? 0 : layout[^1].End;

        var temporary = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                foreach (var (info, _, _) in layout)
                {
                    using var produced = produce(info);
                    WriteTensor(stream, info, produced, path);
                }
                if (stream.Position != 8 + header.Length + dataLength)
                {
                    throw new InvalidOperationException($"{path}: wrote {stream.Position} bytes, expected {8 + header.Length + dataLength}");
                }
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>Writes tensors the caller already holds; they are neither modified nor disposed.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var infos = tensors.Select(p => new CheckpointTensorInfo(p.Key, p.Value.dtype, p.Value.shape)).ToList();
        // alias() is a second handle on the same storage, so disposing it leaves the caller's tensor intact.
        Write(path, infos, info => tensors[info.Name].alias(), metadata);
    }

    private static List<(CheckpointTensorInfo Info, long Begin, long End)> Layout(IReadOnlyList<CheckpointTensorInfo> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var info in tensors)
        {
            if (string.IsNullOrEmpty(info.Name) || info.Name == "__metadata__")
            {
                throw new ArgumentException($"'{info.Name}' cannot name a tensor in a safetensors file.", nameof(tensors));
            }
            if (!names.Add(info.Name))
            {
                throw new ArgumentException($"Tensor '{info.Name}' is listed twice.", nameof(tensors));
            }
            if (!SafetensorsDType.TryGetName(info.DType, out _))
            {
                throw new ArgumentException($"Tensor '{info.Name}' has dtype {info.DType}, which safetensors files here cannot hold " +
                    $"(supported: {SafetensorsDType.SupportedNames}).", nameof(tensors));
            }
            if (TensorBytes.ElementCount(info.Shape) is null)
            {
                throw new ArgumentException($"Tensor '{info.Name}' has an impossible shape [{string.Join(", ", info.Shape)}].", nameof(tensors));
            }
        }

        var layout = new List<(CheckpointTensorInfo, long, long)>(tensors.Count);
        long offset = 0;
        foreach (var info in tensors.OrderByDescending(t => TensorBytes.ElementSize(t.DType)).ThenBy(t => t.Name, StringComparer.Ordinal))
        {
            var end = checked(offset + info.ElementCount * TensorBytes.ElementSize(info.DType));
            layout.Add((info, offset, end));
            offset = end;
        }
        return layout;
    }

    private static byte[] Header(List<(CheckpointTensorInfo Info, long Begin, long End)> layout, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            foreach (var (info, begin, end) in layout)
            {
                SafetensorsDType.TryGetName(info.DType, out var dtypeName);
                json.WriteStartObject(info.Name);
                json.WriteString("dtype", dtypeName);
                json.WriteStartArray("shape");
                foreach (var dim in info.Shape)
                {
                    json.WriteNumberValue(dim);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(begin);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so the data starts 8-byte aligned, as the reference writer does.
        var padded = new byte[(buffer.WrittenCount + 7) / 8 * 8];
        buffer.WrittenSpan.CopyTo(padded);
        padded.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return padded;
    }

    private static void WriteTensor(Stream stream, CheckpointTensorInfo info, Tensor tensor, string path)
    {
        if (tensor.dtype != info.DType || !tensor.shape.SequenceEqual(info.Shape))
        {
            throw new InvalidOperationException($"{path}: tensor '{info.Name}' was declared as {info.DType} " +
                $"[{string.Join(", ", info.Shape)}] but is {tensor.dtype} [{string.Join(", ", tensor.shape)}]");
        }
        using var onCpu = tensor.device_type == TorchSharp.DeviceType.CPU ? null : tensor.cpu();
        var source = onCpu ?? tensor;
        using var contiguous = source.is_contiguous() ? null : source.contiguous();
        TensorBytes.WriteTo(stream, contiguous ?? source);
    }
}
