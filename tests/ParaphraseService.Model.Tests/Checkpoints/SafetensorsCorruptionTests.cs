using System.Buffers.Binary;
using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

public sealed class SafetensorsCorruptionTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Theory]
    [InlineData(0, "shorter than the 8-byte header length")]
    [InlineData(5, "shorter than the 8-byte header length")]
    [InlineData(8, "runs past the end of the file")]
    [InlineData(40, "runs past the end of the file")]
    [InlineData(-1, "truncated")]
    [InlineData(-100, "truncated")]
    public void TruncatedFileIsReportedAtOpen(int keep, string expected)
    {
        var whole = WriteSample();
        var bytes = File.ReadAllBytes(whole);
        var cutTo = keep >= 0 ? keep : bytes.Length + keep;
        var path = Save("cut.safetensors", bytes[..cutTo]);

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        if (keep < 0)
        {
            // Says how long the file should be and how long it is.
            Assert.Contains($"at least {bytes.Length} bytes", error.Message, StringComparison.Ordinal);
            Assert.Contains($"it is {cutTo} bytes", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void FileThatShrinksAfterOpeningFailsOnReadWithTruncated()
    {
        var path = WriteSample();
        using var reader = new SafetensorsReader(path);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(stream.Length - 10);
        }

        var error = Assert.Throws<CheckpointException>(() => reader.Read("b"));

        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
        Assert.Contains("'b'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GarbageIsNotTakenForAHeader()
    {
        var garbage = new byte[4096];
        new Random(7).NextBytes(garbage);
        var path = Save("garbage.safetensors", garbage);

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains("absurd", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HugeHeaderLengthIsAbsurd()
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1UL << 40);
        var path = Save("huge.safetensors", bytes);

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains($"header length {1UL << 40} is absurd", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"a\": {\"dtype\": \"F32\"", "not valid JSON")]
    [InlineData("not json at all", "not valid JSON")]
    [InlineData("[1, 2, 3]", "not a JSON object but a Array")]
    [InlineData("{\"a\": 5}", "tensor 'a' is described by a Number")]
    [InlineData("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", "tensor 'a' has no dtype")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", "tensor 'a' has no shape array")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "shape entry -1, not a non-negative integer")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", "shape entry 1.5")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", "not [begin, end] with begin <= end")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", "not [begin, end]")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", "spanning 4 bytes, but F32 x [2] needs 2 x 4 bytes")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 4]}}", "impossible shape")]
    [InlineData("{\"__metadata__\": {\"n\": 1}}", "__metadata__ entry 'n' is not a string")]
    [InlineData("{\"__metadata__\": [1]}", "__metadata__ is not a JSON object")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "lists tensor 'a' twice")]
    public void BadHeaderIsReported(string header, string expected)
    {
        var path = Save("bad.safetensors", SafetensorsBytes.Make(header, 16));

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidUtf8InTheHeaderIsReported()
    {
        var bytes = SafetensorsBytes.Make("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
        bytes[8 + 2] = 0xFF; // inside the tensor name
        var path = Save("utf8.safetensors", bytes);

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains("header is not valid UTF-8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OffsetsBeyondTheDataAreATruncatedFile()
    {
        const string header = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, " +
            "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [100, 116]}}";
        var bytes = SafetensorsBytes.Make(header, 8);
        var path = Save("short.safetensors", bytes);

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        var dataStart = bytes.Length - 8;
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
        Assert.Contains($"at least {dataStart + 116} bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains($"it is {bytes.Length} bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains("tensor 'b'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("F8_E4M3", 1)]
    [InlineData("C64", 8)]
    [InlineData("U16", 2)]
    public void UnsupportedDtypeNamesDtypeAndTensor(string dtype, int size)
    {
        var header = $"{{\"ok\": {{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}, " +
            $"\"odd\": {{\"dtype\": \"{dtype}\", \"shape\": [2], \"data_offsets\": [4, {4 + 2 * size}]}}}}";
        var path = Save("dtype.safetensors", SafetensorsBytes.Make(header, 4 + 2 * size));

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Contains($"tensor 'odd' has dtype {dtype}, which is not supported", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFileIsACheckpointError()
    {
        var path = _temp.File("absent.safetensors");

        var error = Assert.Throws<CheckpointException>(() => new SafetensorsReader(path));

        Assert.Equal($"{path}: file not found", error.Message);
    }

    [Fact]
    public void UnknownTensorNameIsACheckpointError()
    {
        using var reader = new SafetensorsReader(WriteSample());

        var error = Assert.Throws<CheckpointException>(() => reader.Read("nope"));

        Assert.Contains("no tensor named 'nope'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadAfterDisposeThrows()
    {
        var reader = new SafetensorsReader(WriteSample());
        reader.Dispose();

        Assert.Throws<ObjectDisposedException>(() => reader.Read("a"));
    }

    [Fact]
    public void HeaderWithoutTensorsIsAnEmptyCheckpoint()
    {
        var path = Save("empty.safetensors", SafetensorsBytes.Make("{}      ", 0));

        using var reader = new SafetensorsReader(path);

        Assert.Empty(reader.Tensors);
        Assert.Empty(reader.Metadata);
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

    public void Dispose() => _temp.Dispose();
}
