using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

public sealed class SafetensorsRoundTripTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _temp = new();

    public static TheoryData<ScalarType> DTypes => new(TestTensors.SupportedDTypes);

    [Theory]
    [MemberData(nameof(DTypes))]
    public void EveryDtypeRoundTripsExactly(ScalarType dtype)
    {
        using var matrix = TestTensors.Ramp(dtype, 3, 5);
        using var scalar = TestTensors.Ramp(dtype);
        using var none = TestTensors.Ramp(dtype, 0, 2);
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["matrix"] = matrix, ["scalar"] = scalar, ["none"] = none });

        using var reader = new SafetensorsReader(path);
        Assert.Equal(["matrix", "none", "scalar"], reader.Tensors.Keys.Order());
        Assert.Equal(dtype, reader.Tensors["matrix"].DType);
        Assert.Equal([3L, 5L], reader.Tensors["matrix"].Shape);
        using var readMatrix = reader.Read("matrix");
        using var readScalar = reader.Read("scalar");
        using var readNone = reader.Read("none");
        TestTensors.AssertSame(matrix, readMatrix, "matrix");
        TestTensors.AssertSame(scalar, readScalar, "scalar");
        TestTensors.AssertSame(none, readNone, "none");
        Assert.Equal(TorchSharp.DeviceType.CPU, readMatrix.device_type);
    }

    [Fact]
    public void MetadataRoundTrips()
    {
        using var t = TestTensors.Ramp(ScalarType.Float32, 2);
        var path = _temp.File("m.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };

        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = t }, metadata);

        using var reader = new SafetensorsReader(path);
        Assert.Equal(metadata, reader.Metadata);
    }

    [Fact]
    public void HeaderIsPaddedAndTensorsAreAlignedByElementSize()
    {
        using var bytes = TestTensors.Ramp(ScalarType.Byte, 3);
        using var halves = TestTensors.Ramp(ScalarType.Float16, 3);
        using var doubles = TestTensors.Ramp(ScalarType.Float64, 3);
        using var floats = TestTensors.Ramp(ScalarType.Float32, 1);
        var path = _temp.File("aligned.safetensors");

        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a_bytes"] = bytes, ["b_halves"] = halves, ["c_doubles"] = doubles, ["d_floats"] = floats });

        var file = File.ReadAllBytes(path);
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0, (8 + headerLength) % 8);
        var header = Encoding.UTF8.GetString(file, 8, (int)headerLength);
        Assert.EndsWith("}", header.TrimEnd(' '), StringComparison.Ordinal);
        using var json = JsonDocument.Parse(header);
        var begins = json.RootElement.EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.GetProperty("data_offsets")[0].GetInt64());
        // Descending element size, then name: doubles, floats, halves, bytes.
        Assert.Equal(0, begins["c_doubles"]);
        Assert.Equal(24, begins["d_floats"]);
        Assert.Equal(28, begins["b_halves"]);
        Assert.Equal(34, begins["a_bytes"]);
        Assert.Equal(8 + headerLength + 37, file.Length);
    }

    [Fact]
    public void StreamingWriteProducesTensorsOneAtATimeInLayoutOrderAndDisposesThem()
    {
        var declared = new List<CheckpointTensorInfo>
        {
            new("small", ScalarType.Int8, [4]),
            new("big", ScalarType.Float32, [2, 3]),
            new("mid", ScalarType.BFloat16, [5]),
        };
        var produced = new List<Tensor>();
        var order = new List<string>();
        var path = _temp.File("streamed.safetensors");

        SafetensorsWriter.Write(path, declared, info =>
        {
            // Everything produced before this call has already been written and released.
            Assert.All(produced, t => Assert.True(t.IsInvalid));
            order.Add(info.Name);
            var t = TestTensors.Ramp(info.DType, info.Shape);
            produced.Add(t);
            return t;
        });

        Assert.Equal(["big", "mid", "small"], order);
        Assert.All(produced, t => Assert.True(t.IsInvalid));
        using var reader = new SafetensorsReader(path);
        foreach (var info in declared)
        {
            using var expected = TestTensors.Ramp(info.DType, info.Shape);
            using var actual = reader.Read(info.Name);
            TestTensors.AssertSame(expected, actual, info.Name);
        }
    }

    [Fact]
    public void WriterLeavesCallerTensorsUsableAndWritesNonContiguousOnesByValue()
    {
        using var matrix = TestTensors.Ramp(ScalarType.Float32, 3, 4);
        using var transposed = matrix.t();
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = transposed });

        Assert.False(transposed.IsInvalid);
        using var reader = new SafetensorsReader(path);
        using var read = reader.Read("t");
        using var expected = transposed.contiguous();
        TestTensors.AssertSame(expected, read);
        Assert.True(read.is_contiguous());
    }

    [Fact]
    public void MismatchedProducedTensorFailsAndLeavesNoFile()
    {
        var path = _temp.File("bad.safetensors");
        var declared = new List<CheckpointTensorInfo> { new("x", ScalarType.Float32, [2, 2]) };

        var error = Assert.Throws<InvalidOperationException>(() =>
            SafetensorsWriter.Write(path, declared, _ => TestTensors.Ramp(ScalarType.Float32, 4)));

        Assert.Contains("'x'", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_temp.Path));
    }

    [Fact]
    public void FailedWriteKeepsThePreviousFile()
    {
        using var t = TestTensors.Ramp(ScalarType.Float32, 2);
        var path = _temp.File("keep.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["old"] = t });
        var before = File.ReadAllBytes(path);

        Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path,
            [new CheckpointTensorInfo("new", ScalarType.Float32, [2])],
            _ => throw new InvalidOperationException("producer failed")));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void WriterRejectsWhatSafetensorsCannotHold()
    {
        var path = _temp.File("x.safetensors");
        Tensor Never(CheckpointTensorInfo _) => throw new InvalidOperationException("not reached");

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new CheckpointTensorInfo("c", ScalarType.ComplexFloat32, [2])], Never));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path,
            [new CheckpointTensorInfo("a", ScalarType.Float32, [2]), new CheckpointTensorInfo("a", ScalarType.Float32, [2])], Never));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new CheckpointTensorInfo("__metadata__", ScalarType.Float32, [2])], Never));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void ReadsAFileWrittenByPythonSafetensors()
    {
        using var reader = new SafetensorsReader(Fixtures.Get("checkpoint-formats", "dtypes.expected.safetensors"));

        Assert.Equal("pt", reader.Metadata["format"]);
        var shapes = new Dictionary<string, (ScalarType, long[])>
        {
            ["f64"] = (ScalarType.Float64, [3]), ["f32"] = (ScalarType.Float32, [3, 4]), ["f16"] = (ScalarType.Float16, [2, 5]),
            ["bf16"] = (ScalarType.BFloat16, [4, 3]), ["i64"] = (ScalarType.Int64, [2, 2]), ["i32"] = (ScalarType.Int32, [5]),
            ["i16"] = (ScalarType.Int16, [3]), ["i8"] = (ScalarType.Int8, [6]), ["u8"] = (ScalarType.Byte, [7]),
            ["bool"] = (ScalarType.Bool, [2, 3]), ["scalar"] = (ScalarType.Float32, []), ["param"] = (ScalarType.Float32, [2, 2]),
        };
        foreach (var (name, (dtype, shape)) in shapes)
        {
            using var expected = TestTensors.Ramp(dtype, shape);
            using var actual = reader.Read(name);
            TestTensors.AssertSame(expected, actual, name);
        }
        using var emptyTensor = reader.Read("empty");
        Assert.Equal([0L, 4L], emptyTensor.shape);
    }

    [Fact]
    public void ReadsTensorsLargerThanOneChunkInSlices()
    {
        using var t = TestTensors.Ramp(ScalarType.Float32, 1000, 3);
        var path = _temp.File("sliced.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = t });
        var dataOffset = new FileInfo(path).Length - t.NumberOfElements * 4;

        using var file = File.OpenHandle(path);
        using var read = empty([1000, 3], ScalarType.Float32);
        // 102-byte slices: not a multiple of the element size, so each slice rounds down to 25 whole elements.
        TensorBytes.ReadInto(file, dataOffset, read, path, "t", chunkBytes: 102);

        TestTensors.AssertSame(t, read);
    }

    [Fact]
    public void ReadsA64MegabyteTensorQuickly()
    {
        const long rows = 4096, columns = 4096;
        using var t = rand([rows, columns], ScalarType.Float32);
        var path = _temp.File("large.safetensors");
        var write = Stopwatch.StartNew();
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = t });
        write.Stop();

        using var reader = new SafetensorsReader(path);
        using (reader.Read("t"))
        {
        }
        var timings = new List<double>();
        for (var i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            using var read = reader.Read("t");
            watch.Stop();
            timings.Add(watch.Elapsed.TotalMilliseconds);
            if (i == 0)
            {
                TestTensors.AssertSame(t, read);
            }
        }

        var best = timings.Min();
        output.WriteLine($"64 MiB fp32 tensor: write {write.Elapsed.TotalMilliseconds:F0} ms, read best {best:F1} ms " +
            $"({64 / 1024.0 / (best / 1000):F1} GiB/s), all [{string.Join(", ", timings.Select(x => x.ToString("F1")))}] ms");
        // Generous: a page-cached read runs at several GiB/s; this only catches an accidental element-by-element copy.
        Assert.True(best < 2000, $"reading 64 MiB took {best:F0} ms");
    }

    public void Dispose() => _temp.Dispose();
}
