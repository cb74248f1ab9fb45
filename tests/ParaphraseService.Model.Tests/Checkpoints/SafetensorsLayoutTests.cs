using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>
/// The data layout rule of the reference reader (the Rust crate's <c>Metadata::validate</c> plus the buffer-length
/// check of <c>read_metadata</c>): in offset order the tensors cover the data exactly, without gap, overlap or trailing
/// byte. Every file here is built byte by byte, since the writer never makes one of these.
/// </summary>
public sealed class SafetensorsLayoutTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, int, string> BadLayouts => new()
    {
        // Bytes after the last tensor.
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 8,
            "4 bytes follow the tensor data (the last tensor 'a' ends at data offset 4" },
        { "{}", 3, "3 bytes follow the tensor data (the header lists no tensor" },
        // Bytes no tensor claims: before the first, between two.
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", 8,
            "tensor 'a' has data_offsets [4, 8] but the data starts at 0: the 4 bytes between belong to no tensor" },
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}""", 12,
            "tensor 'b' has data_offsets [8, 12] but the previous tensor 'a' ends at 4: the 4 bytes between belong to no tensor" },
        // Bytes two tensors claim.
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""", 12,
            "tensor 'b' has data_offsets [4, 12], which overlap tensor 'a' [0, 8]: tensors may not share bytes" },
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 4,
            "which overlap tensor 'a' [0, 4]" },
        { """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "empty": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}""", 8,
            "tensor 'empty' has data_offsets [4, 4], which overlap tensor 'a' [0, 8]" },
        // Offsets out of order within one tensor, or past the end of the file.
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}""", 8, "tensor 'a' has data_offsets [8, 4], not [begin, end] with begin <= end" },
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""", 8,
            "file is truncated: it should be at least" },
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "far": {"dtype": "F32", "shape": [2305843009213693950], "data_offsets": [4, 9223372036854775804]}}""", 4,
            "data up to the end of tensor 'far' 9223372036854775804" },
        { """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551615]}}""", 4,
            "tensor 'a' has data_offsets entry 18446744073709551615, not a non-negative integer" },
        // Byte length that is not dtype size x element count.
        { """{"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}""", 4, "spanning 4 bytes, but F16 x [3] needs 3 x 2 bytes" },
        // Keys given twice, at every level.
        { """{"__metadata__": {"format": "pt"}, "__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 4,
            "header has two __metadata__ entries" },
        { """{"__metadata__": {"format": "pt", "format": "np"}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", 4,
            "__metadata__ lists 'format' twice" },
        { """{"a": {"dtype": "F32", "dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}""", 4, "tensor 'a' has two 'dtype' entries" },
    };

    [Theory]
    [MemberData(nameof(BadLayouts))]
    public void BadLayoutIsRefusedNamingTheFileAndTheTensor(string header, int dataBytes, string expected)
    {
        var path = Save("bad.safetensors", SafetensorsBytes.Make(header, dataBytes));

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.StartsWith(path + ": ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AByteAppendedToAWrittenFileIsRefused()
    {
        var path = WriteSample();
        using (var stream = new FileStream(path, FileMode.Append))
        {
            stream.WriteByte(0);
        }

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains("1 bytes follow the tensor data (the last tensor 'b' ends at data offset 616", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HeaderOrderNeedNotBeDataOrder()
    {
        // As in the reference reader, tensors are put in offset order before the layout is checked: files written by
        // older tools list their tensors by name, whatever their place in the data.
        var data = new byte[12];
        BitConverter.GetBytes(1.5f).CopyTo(data, 0);
        BitConverter.GetBytes(-2f).CopyTo(data, 4);
        BitConverter.GetBytes(7f).CopyTo(data, 8);
        var header = """{"z": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}, "e": {"dtype": "I8", "shape": [0, 3], "data_offsets": [12, 12]}}""";
        var path = Save("order.safetensors", SafetensorsBytes.Make(header, data));

        using var reader = new SafetensorsReader(path);

        Assert.Equal(["z", "a", "e"], reader.Tensors.Keys);
        using var z = reader.Read("z");
        using var a = reader.Read("a");
        using var e = reader.Read("e");
        Assert.Equal([1.5f, -2f], z.data<float>().ToArray());
        Assert.Equal([7f], a.data<float>().ToArray());
        Assert.Equal([0L, 3L], e.shape);
    }

    [Fact]
    public void EmptyTensorsAnywhereInTheDataAreFine()
    {
        var header = """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "none": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "end": {"dtype": "BF16", "shape": [2, 0], "data_offsets": [4, 4]}}""";
        var path = Save("empty.safetensors", SafetensorsBytes.Make(header, 4));

        using var reader = new SafetensorsReader(path);

        Assert.Equal(3, reader.Tensors.Count);
    }

    [Fact]
    public void EveryCommittedFixtureStillLoads()
    {
        // Written by Python's safetensors (the golden files, checkpoint-formats) and by our writer (models, adapters).
        var files = Directory.EnumerateFiles(Fixtures.Get(), "*.safetensors", SearchOption.AllDirectories).ToList();
        Assert.True(files.Count >= 10, $"only {files.Count} fixtures found");
        foreach (var file in files)
        {
            using var reader = new SafetensorsReader(file);
            foreach (var name in reader.Tensors.Keys)
            {
                using var tensor = reader.Read(name);
            }
        }
    }

    [Fact]
    public void AShardWithAGapIsRefusedThroughItsIndex()
    {
        var shard = Save("model-00001-of-00001.safetensors", SafetensorsBytes.Make(
            """{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}""", 12));
        File.WriteAllText(_temp.File("model.safetensors.index.json"), JsonSerializer.Serialize(new
        {
            weight_map = new Dictionary<string, string> { ["a"] = "model-00001-of-00001.safetensors", ["b"] = "model-00001-of-00001.safetensors" },
        }));
        using var source = CheckpointFiles.Open(_temp.Path);

        var error = Assert.Throws<CheckpointException>(() => source.Read("a"));

        Assert.StartsWith(shard + ": tensor 'b' has data_offsets [8, 12]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnAdapterFileWithTrailingBytesIsRefused()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("adapter"));
        using (var stream = new FileStream(Path.Combine(folder, PeftFixtures.WeightsFile), FileMode.Append))
        {
            stream.Write(new byte[16]);
        }

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        Assert.Contains("adapter_model.safetensors is corrupt: 16 bytes follow the tensor data (the last tensor " +
            "'base_model.model.transformer.h.1.attn.v_proj.lora_B.weight' ends at", error.Message, StringComparison.Ordinal);
    }

    private string WriteSample()
    {
        using var a = TestTensors.Ramp(ScalarType.Float32, 4);
        using var b = TestTensors.Ramp(ScalarType.Float16, 300);
        var path = _temp.File("sample.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        return path;
    }

    private string Save(string name, byte[] bytes)
    {
        var path = _temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
