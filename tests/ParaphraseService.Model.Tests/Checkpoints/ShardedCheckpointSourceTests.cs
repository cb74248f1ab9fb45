using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

public sealed class ShardedCheckpointSourceTests : IDisposable
{
    private const string Index = "model.safetensors.index.json";
    private const string Shard1 = "model-00001-of-00002.safetensors";
    private const string Shard2 = "model-00002-of-00002.safetensors";

    private readonly TempFolder _temp = new();

    [Fact]
    public void ReadsAShardedPyTorchCheckpoint()
    {
        using var source = new ShardedCheckpointSource(Fixtures.Get("checkpoint-formats", "sharded_bin", "pytorch_model.bin.index.json"));
        using var expected = new SafetensorsReader(Fixtures.Get("checkpoint-formats", "dtypes.expected.safetensors"));

        Assert.Equal(["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"], source.ShardFiles);
        Assert.Equal(["f32", "f16", "bf16", "i64"], source.Tensors.Keys);
        foreach (var name in source.Tensors.Keys)
        {
            using var want = expected.Read(name);
            using var got = source.Read(name);
            TestTensors.AssertSame(want, got, name);
        }
    }

    [Fact]
    public void ReadsAShardedSafetensorsCheckpoint()
    {
        WriteShards();

        using var source = new ShardedCheckpointSource(_temp.File(Index));

        Assert.Equal(["a", "b", "c"], source.Tensors.Keys);
        Assert.Equal(ScalarType.BFloat16, source.Tensors["c"].DType);
        using var c = source.Read("c");
        using var expected = TestTensors.Ramp(ScalarType.BFloat16, 2, 3);
        TestTensors.AssertSame(expected, c);
    }

    [Fact]
    public void OpensOnlyTheShardsItReads()
    {
        WriteShards();
        // A broken second shard does not matter until one of its tensors is needed.
        File.WriteAllBytes(_temp.File(Shard2), new byte[3]);
        using var source = new ShardedCheckpointSource(_temp.File(Index));

        using (source.Read("a"))
        {
        }
        var error = Assert.Throws<CheckpointException>(() => source.Read("c"));

        Assert.Contains(_temp.File(Shard2), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingShardFileIsReportedAtOpen()
    {
        WriteShards();
        File.Delete(_temp.File(Shard2));

        var error = Assert.Throws<CheckpointException>(() => new ShardedCheckpointSource(_temp.File(Index)));

        Assert.Contains($"shard file '{Shard2}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
        Assert.StartsWith(_temp.File(Index), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyMissingFromItsShardIsReported()
    {
        WriteShards(extraIndexEntry: ("d", Shard1));
        using var source = new ShardedCheckpointSource(_temp.File(Index));

        var error = Assert.Throws<CheckpointException>(() => source.Read("a"));

        Assert.Contains("shard lacks tensor 'd', which the index", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ShardHoldingUnlistedKeysIsReported()
    {
        WriteShards(leaveOutOfIndex: "b");
        using var source = new ShardedCheckpointSource(_temp.File(Index));

        var error = Assert.Throws<CheckpointException>(() => source.Tensors);

        Assert.Contains("shard holds tensor 'b', which the index", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not list", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ShardHoldingAKeyTheIndexPutsElsewhereIsReported()
    {
        WriteShards();
        WriteIndex(new() { ["a"] = Shard1, ["b"] = Shard2, ["c"] = Shard2 });
        using var source = new ShardedCheckpointSource(_temp.File(Index));

        var error = Assert.Throws<CheckpointException>(() => source.Read("a"));

        Assert.Contains($"shard holds tensor 'b', which the index {_temp.File(Index)} assigns to shard '{Shard2}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "no \"weight_map\" object")]
    [InlineData("{\"metadata\": {}}", "no \"weight_map\" object")]
    [InlineData("{\"weight_map\": {}}", "weight_map is empty")]
    [InlineData("{\"weight_map\": {\"a\": 3}}", "weight_map entry 'a' is not a file name")]
    [InlineData("{\"weight_map\": {\"a\": \"../model.safetensors\"}}", "not a file in the index's folder")]
    [InlineData("{\"weight_map\": {\"a\": \"/etc/passwd\"}}", "not a file in the index's folder")]
    public void BadIndexIsReported(string json, string expected)
    {
        File.WriteAllText(_temp.File(Index), json);

        var error = Assert.Throws<CheckpointException>(() => new ShardedCheckpointSource(_temp.File(Index)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingIndexAndUnknownTensorAreReported()
    {
        Assert.Contains("file not found", Assert.Throws<CheckpointException>(() => new ShardedCheckpointSource(_temp.File(Index))).Message,
            StringComparison.Ordinal);
        WriteShards();
        using var source = new ShardedCheckpointSource(_temp.File(Index));
        Assert.Contains("no tensor named 'zzz'", Assert.Throws<CheckpointException>(() => source.Read("zzz")).Message, StringComparison.Ordinal);
    }

    /// <summary>Shard 1 holds a (f32) and b (i64), shard 2 holds c (bf16).</summary>
    private void WriteShards(string? leaveOutOfIndex = null, (string Name, string Shard)? extraIndexEntry = null)
    {
        using var a = TestTensors.Ramp(ScalarType.Float32, 4);
        using var b = TestTensors.Ramp(ScalarType.Int64, 2);
        using var c = TestTensors.Ramp(ScalarType.BFloat16, 2, 3);
        SafetensorsWriter.Write(_temp.File(Shard1), new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        SafetensorsWriter.Write(_temp.File(Shard2), new Dictionary<string, Tensor> { ["c"] = c });
        var map = new Dictionary<string, string> { ["a"] = Shard1, ["b"] = Shard1, ["c"] = Shard2 };
        if (leaveOutOfIndex is not null)
        {
            map.Remove(leaveOutOfIndex);
        }
        if (extraIndexEntry is { } extra)
        {
            map[extra.Name] = extra.Shard;
        }
        WriteIndex(map);
    }

    private void WriteIndex(Dictionary<string, string> weightMap) =>
        File.WriteAllText(_temp.File(Index), JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));

    public void Dispose() => _temp.Dispose();
}
