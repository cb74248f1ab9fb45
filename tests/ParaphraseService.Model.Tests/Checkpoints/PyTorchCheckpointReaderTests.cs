using System.Text;
using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

public sealed class PyTorchCheckpointReaderTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Theory]
    [InlineData("dtypes.bin")]
    [InlineData("dtypes_protocol4.bin")]
    [InlineData("dtypes_zip64.bin")]
    public void ReadsEveryDtypeExactly(string fixture)
    {
        using var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", fixture));

        Assert.Equal(["f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool", "scalar", "empty", "param"], reader.Tensors.Keys);
        Assert.Equal(ScalarType.BFloat16, reader.Tensors["bf16"].DType);
        Assert.Equal([4L, 3L], reader.Tensors["bf16"].Shape);
        Assert.Empty(reader.Tensors["scalar"].Shape);
        AssertMatchesExpected(reader, "dtypes.expected.safetensors");
        var independent = new (string Name, ScalarType DType, long[] Shape)[]
        {
            ("f64", ScalarType.Float64, [3]), ("f32", ScalarType.Float32, [3, 4]), ("f16", ScalarType.Float16, [2, 5]),
            ("bf16", ScalarType.BFloat16, [4, 3]), ("i64", ScalarType.Int64, [2, 2]), ("i32", ScalarType.Int32, [5]),
            ("i16", ScalarType.Int16, [3]), ("i8", ScalarType.Int8, [6]), ("u8", ScalarType.Byte, [7]),
            ("bool", ScalarType.Bool, [2, 3]), ("scalar", ScalarType.Float32, []), ("param", ScalarType.Float32, [2, 2]),
        };
        foreach (var (name, dtype, shape) in independent)
        {
            using var expected = TestTensors.Ramp(dtype, shape);
            using var actual = reader.Read(name);
            TestTensors.AssertSame(expected, actual, name);
        }
    }

    [Fact]
    public void ReadsViewsIntoSharedStoragesWithOffsetsAndStrides()
    {
        using var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "views.bin"));

        AssertMatchesExpected(reader, "views.expected.safetensors");
        using var baseValues = TestTensors.Ramp(ScalarType.Float32, 24);
        using var tail = reader.Read("tail");
        using var expectedTail = baseValues.narrow(0, 10, 12).reshape(3, 4);
        TestTensors.AssertSame(expectedTail, tail, "tail");
        using var column = reader.Read("column");
        using var expectedColumn = baseValues.view(4, 6).narrow(1, 2, 2).contiguous();
        TestTensors.AssertSame(expectedColumn, column, "column");
        Assert.True(column.is_contiguous());
        using var transposed = reader.Read("transposed");
        Assert.True(transposed.is_contiguous());
        Assert.Equal([4L, 3L], transposed.shape);
    }

    [Fact]
    public void ReadTensorsAreIndependentOfEachOther()
    {
        using var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "views.bin"));
        using var head = reader.Read("head");
        using var again = reader.Read("head");

        head.fill_(42);

        using var expected = TestTensors.Ramp(ScalarType.Float32, 6).reshape(2, 3);
        TestTensors.AssertSame(expected, again);
    }

    [Fact]
    public void ReadsAModuleStateDictWithItsMetadataAttribute()
    {
        using var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "module_state_dict.bin"));

        Assert.Equal(["0.weight", "0.bias", "1.weight", "1.bias"], reader.Tensors.Keys);
        AssertMatchesExpected(reader, "module_state_dict.expected.safetensors");
    }

    [Fact]
    public void LegacyFormatAsksForAResave()
    {
        var path = Fixtures.Get("checkpoint-formats", "legacy.bin");

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("legacy PyTorch format", error.Message, StringComparison.Ordinal);
        Assert.Contains("re-save with torch>=1.6 or convert to safetensors", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GlobalsAStateDictDoesNotNeedAreRefusedByName()
    {
        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "forbidden_global.bin")));

        Assert.Contains("'__builtin__.print'", error.Message, StringComparison.Ordinal);
        Assert.Contains("refusing to load it", error.Message, StringComparison.Ordinal);
        Assert.Contains("forbidden_global/data.pkl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATrainingCheckpointIsNotAStateDict()
    {
        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "training_checkpoint.bin")));

        Assert.Contains("key 'model' holds a dict, not a tensor", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.state_dict()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnsupportedStorageTypeIsNamed()
    {
        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "complex.bin")));

        Assert.Contains("storage type torch.ComplexFloatStorage is not supported", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BigEndianCheckpointIsRefused()
    {
        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "byteorder_big.bin")));

        Assert.Contains("byteorder 'big'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    public void TruncatedArchiveIsReported(double keptFraction)
    {
        var bytes = File.ReadAllBytes(Fixtures.Get("checkpoint-formats", "dtypes.bin"));
        var path = Save("cut.bin", bytes[..(int)(bytes.Length * keptFraction)]);

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(22)]
    public void ArchiveCutAtItsEndRecordIsReported(int removed)
    {
        var bytes = File.ReadAllBytes(Fixtures.Get("checkpoint-formats", "dtypes.bin"));
        var path = Save("cut.bin", bytes[..^removed]);

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.Contains("truncated or not a zip archive", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingStorageEntryIsReported()
    {
        var bytes = File.ReadAllBytes(Fixtures.Get("checkpoint-formats", "dtypes.bin"));
        // Renaming the entry in both zip headers leaves a valid archive whose data.pkl points at a storage that is gone.
        var path = Save("renamed.bin", Replace(bytes, "dtypes/data/3", "dtypes/data/X"));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.Contains("refers to storage '3' but the archive has no entry 'dtypes/data/3'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HandMadeArchiveReadsBack(bool dataDescriptors)
    {
        var path = Save("hand.bin", TorchCheckpointBytes.Archive(
            [TorchCheckpointBytes.Contiguous("a", 2, 3), new("tail", "a", 6, 2, [4], [1])],
            new Dictionary<string, byte[]> { ["a"] = TorchCheckpointBytes.Ramp(6) }, dataDescriptors: dataDescriptors));

        using var reader = new PyTorchCheckpointReader(path);

        using var a = reader.Read("a");
        Assert.Equal([2L, 3L], a.shape);
        Assert.Equal([0f, 1f, 2f, 3f, 4f, 5f], a.data<float>().ToArray());
        using var tail = reader.Read("tail");
        Assert.Equal([2f, 3f, 4f, 5f], tail.data<float>().ToArray());
    }

    [Fact]
    public void StorageWhoseByteCountOverflowsIsRefused()
    {
        // 2**62 + 1 floats are 2**64 + 4 bytes: in 64 bits that wraps to 4, which the 4-byte entry holds, and the
        // 128-element view of 'a' would then read the next zip header and tensor 'b' as its values.
        var path = Save("overflow.bin", TorchCheckpointBytes.Archive(
            [TorchCheckpointBytes.Contiguous("a", 128) with { StorageElements = (1L << 62) + 1 }, TorchCheckpointBytes.Contiguous("b", 128)],
            new Dictionary<string, byte[]> { ["a"] = TorchCheckpointBytes.Ramp(1), ["b"] = TorchCheckpointBytes.Ramp(128, start: 1000) }));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("entry 'archive/data/a' is 4 bytes but its Float32 storage of 4611686018427387905 elements needs 18446744073709551620",
            error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(5L, new long[] { 2 }, new long[] { 1 })] // offset + numel is one past the storage
    [InlineData(0L, new long[] { 2, 3 }, new long[] { 3, 2 })] // strides reach element 7 of 6
    [InlineData(0L, new long[] { 2, 2 }, new long[] { 1L << 62, 1L << 62 })] // strides overflow 64 bits
    [InlineData(long.MaxValue, new long[] { 1 }, new long[] { 1 })] // offset alone is past the storage
    [InlineData(0L, new long[] { 2 }, new long[] { -1 })] // negative stride reaches before the storage
    public void ViewReachingOutsideItsStorageIsRefused(long offset, long[] shape, long[] stride)
    {
        var path = Save("view.bin", TorchCheckpointBytes.Archive(
            [new("v", "s", 6, offset, shape, stride), TorchCheckpointBytes.Contiguous("next", 4)],
            new Dictionary<string, byte[]> { ["s"] = TorchCheckpointBytes.Ramp(6), ["next"] = TorchCheckpointBytes.Ramp(4) }));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("tensor 'v'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StoredEntryWhoseTwoSizesDifferIsRefused()
    {
        // The storage check read the uncompressed size (512, enough for 128 floats), the bounds check the stored one (4):
        // the read ran 508 bytes into the next zip header and tensor.
        var path = Save("sizes.bin", TwoTensorArchive(centralSizes: (name, length) => name == "archive/data/a" ? (length, 512) : (length, length)));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("entry 'archive/data/a' is stored uncompressed but the central directory records 4 bytes stored and 512 bytes uncompressed",
            error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false, "entry 'archive/data/a' is 512 bytes (512 uncompressed) in the central directory but 4 (4) in its local header")]
    [InlineData(true, "entry 'archive/data/a' (bytes 533 to 1045) runs into the next entry or the central directory at byte 553")]
    public void EntryLongerThanItsBytesIsRefused(bool dataDescriptors, string expected)
    {
        // Both central sizes agree on 512 but only 4 bytes are there: the local header says so, or (torch.save's data
        // descriptors leave it 0) the next entry's header starts inside the claimed bytes.
        var path = Save("long.bin", TwoTensorArchive(
            centralSizes: (name, length) => name == "archive/data/a" ? (512, 512) : (length, length), dataDescriptors: dataDescriptors));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CentralEntryPointingAtAnotherEntrysHeaderIsRefused()
    {
        var bytes = TorchCheckpointBytes.Archive([TorchCheckpointBytes.Contiguous("a", 4), TorchCheckpointBytes.Contiguous("b", 4)],
            new Dictionary<string, byte[]> { ["a"] = TorchCheckpointBytes.Ramp(4), ["b"] = TorchCheckpointBytes.Ramp(4) });
        // Renaming only the local header of 'a' (the first occurrence) leaves the central directory pointing at a header
        // that describes other bytes.
        var local = bytes.AsSpan().IndexOf("archive/data/a"u8);
        "archive/data/c"u8.CopyTo(bytes.AsSpan(local));
        var path = Save("renamed_local.bin", bytes);

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.Contains("the central directory entry 'archive/data/a' points at the local header of 'archive/data/c'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ZipWithoutDataPklIsNotACheckpoint()
    {
        var bytes = File.ReadAllBytes(Fixtures.Get("checkpoint-formats", "dtypes.bin"));
        var path = Save("nopkl.bin", Replace(bytes, "dtypes/data.pkl", "dtypes/data.pkX"));

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.Contains("without a single <archive>/data.pkl entry", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[0], "file is empty")]
    [InlineData(new byte[] { (byte)'h', (byte)'i', (byte)'!', 10 }, "not a PyTorch checkpoint")]
    [InlineData(new byte[] { (byte)'P', (byte)'K', 3, 4, 0, 0 }, "truncated or not a zip archive")]
    public void NonCheckpointsAreReported(byte[] content, string expected)
    {
        var path = Save("odd.bin", content);

        var error = Assert.Throws<CheckpointException>(() => new PyTorchCheckpointReader(path));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CorruptBytesNeverCrashOrHang()
    {
        // Corrupting any single byte must end in a CheckpointException or a readable file (a changed tensor value),
        // never in another exception type.
        var original = File.ReadAllBytes(Fixtures.Get("checkpoint-formats", "views.bin"));
        var random = new Random(1234);
        var path = _temp.File("corrupt.bin");
        var failures = 0;
        for (var position = 0; position < original.Length; position++)
        {
            var bytes = (byte[])original.Clone();
            bytes[position] = (byte)random.Next(256);
            File.WriteAllBytes(path, bytes);
            try
            {
                using var reader = new PyTorchCheckpointReader(path);
                foreach (var name in reader.Tensors.Keys)
                {
                    reader.Read(name).Dispose();
                }
            }
            catch (CheckpointException)
            {
                failures++;
            }
        }
        Assert.InRange(failures, 1, original.Length);
    }

    [Fact]
    public void ConvertsToSafetensorsByStreaming()
    {
        using var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "views.bin"));
        var path = _temp.File("converted.safetensors");

        SafetensorsWriter.Write(path, reader.Tensors.Values.ToList(), info => reader.Read(info.Name));

        using var converted = new SafetensorsReader(path);
        foreach (var name in reader.Tensors.Keys)
        {
            using var expected = reader.Read(name);
            using var actual = converted.Read(name);
            TestTensors.AssertSame(expected, actual, name);
        }
    }

    [Fact]
    public void UnknownTensorAndDisposedReaderAreReported()
    {
        var reader = new PyTorchCheckpointReader(Fixtures.Get("checkpoint-formats", "views.bin"));

        Assert.Contains("no tensor named 'nope'", Assert.Throws<CheckpointException>(() => reader.Read("nope")).Message, StringComparison.Ordinal);
        reader.Dispose();
        Assert.Throws<ObjectDisposedException>(() => reader.Read("head"));
    }

    /// <summary>'a' (128 floats whose entry holds only the first) followed by 'b': reading past 'a' lands in 'b'.</summary>
    private static byte[] TwoTensorArchive(Func<string, int, (long, long)>? centralSizes = null, bool dataDescriptors = false) =>
        TorchCheckpointBytes.Archive(
            [TorchCheckpointBytes.Contiguous("a", 128), TorchCheckpointBytes.Contiguous("b", 128)],
            new Dictionary<string, byte[]> { ["a"] = TorchCheckpointBytes.Ramp(1), ["b"] = TorchCheckpointBytes.Ramp(128, start: 1000) },
            centralSizes, dataDescriptors);

    private static void AssertMatchesExpected(ICheckpointSource reader, string expectedFixture)
    {
        using var expected = new SafetensorsReader(Fixtures.Get("checkpoint-formats", expectedFixture));
        Assert.Equal(expected.Tensors.Keys.Order(), reader.Tensors.Keys.Order());
        foreach (var name in expected.Tensors.Keys)
        {
            using var want = expected.Read(name);
            using var got = reader.Read(name);
            Assert.Equal(want.dtype, reader.Tensors[name].DType);
            Assert.Equal(want.shape, reader.Tensors[name].Shape);
            TestTensors.AssertSame(want, got, name);
        }
    }

    private static byte[] Replace(byte[] bytes, string from, string to)
    {
        var text = Encoding.Latin1.GetString(bytes);
        Assert.Contains(from, text, StringComparison.Ordinal);
        return Encoding.Latin1.GetBytes(text.Replace(from, to, StringComparison.Ordinal));
    }

    private string Save(string name, byte[] bytes)
    {
        var path = _temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose() => _temp.Dispose();
}
