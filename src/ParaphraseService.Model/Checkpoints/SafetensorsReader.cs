using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// One <c>.safetensors</c> file: an 8-byte little-endian header length N, N bytes of JSON describing every tensor,
/// then the tensor bytes. The whole header is validated when the file is opened, as strictly as the reference
/// reader (the Rust crate's <c>SafeTensors::read_metadata</c> and <c>Metadata::validate</c>): taken in offset order, the
/// tensors must cover the data exactly, each starting where the previous one ends, with no gap, overlap or trailing
/// byte, and each spanning dtype size x element count bytes. Tensors are read one at a time with positional reads, so
/// the file is never loaded whole. <see cref="Read"/> may be called from several threads.
/// </summary>
public sealed class SafetensorsReader : ICheckpointSource
{
    /// <summary>The reference implementation refuses headers over 100 MB; a larger length means a corrupt file.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, long> _dataOffsets = new(StringComparer.Ordinal);

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="CheckpointException">The file is missing, truncated or not a valid safetensors file.</exception>
    public SafetensorsReader(string path)
    {
        Path = path;
        _file = CheckpointFileHandles.OpenRead(path);
        try
        {
            (Tensors, Metadata) = ReadHeader();
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    public string Path { get; }

    /// <summary>The free-form string pairs stored under <c>__metadata__</c> (empty when there are none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors { get; }

    public Tensor Read(string name)
    {
        ObjectDisposedException.ThrowIf(_file.IsClosed, this);
        if (!Tensors.TryGetValue(name, out var info))
        {
            throw new CheckpointException($"{Path}: no tensor named '{name}'");
        }
        var tensor = empty(info.Shape, info.DType);
        try
        {
            TensorBytes.ReadInto(_file, _dataOffsets[name], tensor, Path, name);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    public void Dispose() => _file.Dispose();

    private (IReadOnlyDictionary<string, CheckpointTensorInfo>, IReadOnlyDictionary<string, string>) ReadHeader()
    {
        var fileLength = RandomAccess.GetLength(_file);
        if (fileLength < 8)
        {
            throw Error($"file is {fileLength} bytes, shorter than the 8-byte header length that starts a safetensors file");
        }
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(prefix, 0);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
        {
            throw Error($"header length {headerLength} is absurd (over {MaxHeaderBytes} bytes): not a safetensors file, or corrupt");
        }
        if (8 + (long)headerLength > fileLength)
        {
            throw Error($"header length {headerLength} runs past the end of the file ({fileLength} bytes): truncated, or not a safetensors file");
        }
        var header = new byte[headerLength];
        ReadExactly(header, 8);
        var dataStart = 8 + (long)headerLength;
        // System.Text.Json defers UTF-8 validation of strings until they are read; check it up front instead.
        if (!Utf8.IsValid(header))
        {
            throw Error("header is not valid UTF-8");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Error($"header is not valid JSON: {e.Message}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Error($"header is not a JSON object but a {document.RootElement.ValueKind}");
            }
            var tensors = new OrderedDictionary<string, CheckpointTensorInfo>(StringComparer.Ordinal);
            var spans = new List<(string Name, long Begin, long End)>();
            IReadOnlyDictionary<string, string>? metadata = null;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (metadata is not null)
                    {
                        throw Error($"header has two {MetadataKey} entries");
                    }
                    metadata = ParseMetadata(property.Value);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                {
                    throw Error($"header lists tensor '{property.Name}' twice");
                }
                var (info, begin, end) = ParseTensor(property.Name, property.Value);
                tensors.Add(info.Name, info);
                _dataOffsets[info.Name] = dataStart + begin;
                spans.Add((info.Name, begin, end));
            }
            CheckLayout(spans, dataStart, fileLength);
            return (tensors, metadata ?? new Dictionary<string, string>());
        }
    }

    /// <summary>
    /// The reference reader's layout rule: sorted by data_offsets, the first tensor starts at 0, every next one where
    /// the previous ends, and the last ends exactly where the file does. Anything else (a gap of unclaimed bytes, two
    /// tensors sharing bytes, bytes after the last tensor) is a corrupt or doctored file. The header may list tensors in
    /// any order; older writers sorted them by name.
    /// </summary>
    private void CheckLayout(List<(string Name, long Begin, long End)> spans, long dataStart, long fileLength)
    {
        // Offsets are at most long.MaxValue each; dataStart is at most 8 + MaxHeaderBytes, so no sum below overflows.
        var furthest = spans.Count == 0 ? default : spans.MaxBy(s => s.End);
        if (spans.Count > 0 && furthest.End > fileLength - dataStart)
        {
            throw Error($"file is truncated: it should be at least {dataStart + (Int128)furthest.End} bytes (header {dataStart}, " +
                $"data up to the end of tensor '{furthest.Name}' {furthest.End}) but it is {fileLength} bytes");
        }
        spans.Sort((x, y) => x.Begin != y.Begin ? x.Begin.CompareTo(y.Begin) : x.End.CompareTo(y.End));
        long covered = 0;
        (string Name, long Begin, long End)? previous = null;
        foreach (var span in spans)
        {
            if (span.Begin > covered)
            {
                var before = previous is { } p ? $"the previous tensor '{p.Name}' ends at {p.End}" : "the data starts at 0";
                throw Error($"tensor '{span.Name}' has data_offsets [{span.Begin}, {span.End}] but {before}: " +
                    $"the {span.Begin - covered} bytes between belong to no tensor");
            }
            if (span.Begin < covered)
            {
                var (name, begin, end) = previous!.Value;
                throw Error($"tensor '{span.Name}' has data_offsets [{span.Begin}, {span.End}], which overlap tensor '{name}' " +
                    $"[{begin}, {end}]: tensors may not share bytes");
            }
            covered = span.End;
            previous = span;
        }
        var trailing = fileLength - dataStart - covered;
        if (trailing > 0)
        {
            var last = previous is { } l ? $"the last tensor '{l.Name}' ends at data offset {l.End}" : "the header lists no tensor";
            throw Error($"{trailing} bytes follow the tensor data ({last}, file offset {dataStart + covered}, but the file is " +
                $"{fileLength} bytes): a safetensors file ends with its last tensor");
        }
    }

    private Dictionary<string, string> ParseMetadata(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Error($"{MetadataKey} is not a JSON object");
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw Error($"{MetadataKey} entry '{entry.Name}' is not a string");
            }
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
            {
                throw Error($"{MetadataKey} lists '{entry.Name}' twice");
            }
        }
        return metadata;
    }

    private (CheckpointTensorInfo Info, long Begin, long End) ParseTensor(string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Error($"tensor '{name}' is described by a {element.ValueKind}, not an object");
        }
        // JsonElement.TryGetProperty would silently pick one of two "dtype" entries; the reference refuses the field twice.
        var fields = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in element.EnumerateObject())
        {
            if (!fields.Add(field.Name))
            {
                throw Error($"tensor '{name}' has two '{field.Name}' entries");
            }
        }
        if (!element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw Error($"tensor '{name}' has no dtype string");
        }
        var dtypeName = dtypeElement.GetString()!;
        if (!SafetensorsDType.TryParse(dtypeName, out var dtype))
        {
            throw Error($"tensor '{name}' has dtype {dtypeName}, which is not supported (supported: {SafetensorsDType.SupportedNames})");
        }
        var shape = ReadLongArray(element, "shape", name);
        var offsets = ReadLongArray(element, "data_offsets", name);
        if (offsets.Length != 2 || offsets[0] > offsets[1])
        {
            throw Error($"tensor '{name}' has data_offsets [{string.Join(", ", offsets)}], not [begin, end] with begin <= end");
        }
        var count = TensorBytes.ElementCount(shape)
            ?? throw Error($"tensor '{name}' has an impossible shape [{string.Join(", ", shape)}]");
        var elementSize = TensorBytes.ElementSize(dtype);
        if (count > long.MaxValue / elementSize || offsets[1] - offsets[0] != count * elementSize)
        {
            throw Error($"tensor '{name}' has data_offsets [{offsets[0]}, {offsets[1]}] spanning {offsets[1] - offsets[0]} bytes, " +
                $"but {dtypeName} x [{string.Join(", ", shape)}] needs {count} x {elementSize} bytes");
        }
        return (new CheckpointTensorInfo(name, dtype, shape), offsets[0], offsets[1]);
    }

    private long[] ReadLongArray(JsonElement element, string property, string tensor)
    {
        if (!element.TryGetProperty(property, out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw Error($"tensor '{tensor}' has no {property} array");
        }
        var values = new long[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var value) || value < 0)
            {
                throw Error($"tensor '{tensor}' has {property} entry {item.GetRawText()}, not a non-negative integer");
            }
            values[i++] = value;
        }
        return values;
    }

    private void ReadExactly(Span<byte> buffer, long offset)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            int read;
            try
            {
                read = RandomAccess.Read(_file, buffer[done..], offset + done);
            }
            catch (IOException e)
            {
                throw new CheckpointException($"{Path}: reading the header failed: {e.Message}", e);
            }
            if (read == 0)
            {
                throw Error("file is truncated inside its header");
            }
            done += read;
        }
    }

    private CheckpointException Error(string problem) => new($"{Path}: {problem}");
}
