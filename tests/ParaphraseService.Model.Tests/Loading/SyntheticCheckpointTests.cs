using System.Text.Json.Nodes;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests.Checkpoints;
using ParaphraseService.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

public sealed class SyntheticCheckpointTests : IDisposable
{
    private const long Seed = 7;
    private static readonly ModelLoadOptions Cpu = new() { Device = "cpu" };
    private static readonly long[] Ids = [3, 17, 42, 5, 88, 1, 60];

    // Tiny model tensor bytes in float32: wte 12288, each layer 50048, ln_f 256, lm_head 12672 (125312 in all).
    // 60000 per shard gives [wte] [h.0] [h.1, ln_f] [lm_head]; half that does the same in 16-bit dtypes.
    private const long Float32ShardBytes = 60_000;

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Out(string name = "model") => _temp.File(name);

    [Fact]
    public void Float32ShardsLoadAsExactlyTheRandomCheckpointModel()
    {
        var result = SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), Float32ShardBytes);

        Assert.Equal(
            ["config.json", "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
             "model-00004-of-00004.safetensors", "model.safetensors.index.json", "vocab.json", "merges.txt"],
            result.Files);
        Assert.Equal(Directory.GetFiles(Out()).Select(Path.GetFileName).Order(), result.Files.Order());
        Assert.Equal(Path.GetFullPath(Out()), result.Folder);
        Assert.Equal(125_312, result.TensorBytes);
        Assert.Equal(Directory.GetFiles(Out()).Sum(f => new FileInfo(f).Length), result.FolderBytes);

        using var loaded = ModelLoader.LoadFolder(Out(), Cpu);
        using var direct = TinyModels.Create(TinyModels.Config, ScalarType.Float32, Seed);
        AssertSameParameters(direct, loaded.Model, dtype: null);
        using var expected = TinyModels.Logits(direct, Ids);
        using var actual = TinyModels.Logits(loaded.Model, Ids);
        Assert.True(actual.eq(expected).all().item<bool>());
    }

    [Theory]
    [InlineData(ScalarType.Float16, "float16")]
    [InlineData(ScalarType.BFloat16, "bfloat16")]
    public void SixteenBitShardsHoldTheRandomWeightsRounded(ScalarType dtype, string name)
    {
        var result = SyntheticCheckpoint.Write(TinyModels.Config, Seed, dtype, Out(), Float32ShardBytes / 2);
        Assert.Equal(4, result.ShardFiles.Count);
        Assert.Equal(125_312 / 2, result.TensorBytes);
        Assert.Equal(name, GptJConfig.Load(Path.Combine(Out(), "config.json")).TorchDtype);
        using (var checkpoint = CheckpointFiles.Open(Out()))
            Assert.All(checkpoint.Tensors.Values, info => Assert.Equal(dtype, info.DType));

        // Loaded in float32 (the CPU has no float16 matmul): every weight is the float32 value rounded to the dtype.
        using var loaded = ModelLoader.LoadFolder(Out(), Cpu);
        using var direct = TinyModels.Create(TinyModels.Config, ScalarType.Float32, Seed);
        AssertSameParameters(direct, loaded.Model, dtype);
        using var expected = TinyModels.Logits(direct, Ids);
        using var actual = TinyModels.Logits(loaded.Model, Ids);
        // Rounding 0.02-scale weights to 11 (float16) or 8 (bfloat16) significant bits moves the logits a little.
        var tolerance = dtype == ScalarType.Float16 ? 2e-3 : 2e-2;
        Assert.True(actual.allclose(expected, rtol: 0, atol: tolerance), $"max |dlogit| {(actual - expected).abs().max().item<float>()}");
        Assert.False(actual.eq(expected).all().item<bool>());
    }

    [Fact]
    public void IndexListsEveryTensorWithItsShardAndTheTotalSize()
    {
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), Float32ShardBytes);

        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(Out(), "model.safetensors.index.json")))!;
        var weightMap = index["weight_map"]!.AsObject().ToDictionary(p => p.Key, p => (string)p.Value!);
        long sum = 0;
        foreach (var shard in weightMap.Values.Distinct())
        {
            using var reader = new SafetensorsReader(Path.Combine(Out(), shard));
            Assert.Equal("pt", reader.Metadata["format"]);
            Assert.Equal(weightMap.Where(p => p.Value == shard).Select(p => p.Key).Order(), reader.Tensors.Keys.Order());
            sum += reader.Tensors.Values.Sum(t => t.ElementCount * 4);
        }
        Assert.Equal(sum, (long)index["metadata"]!["total_size"]!);
        Assert.Equal(125_312, sum);

        // Model order, whole layers: [wte] [h.0] [h.1, ln_f] [lm_head].
        using var random = new RandomCheckpoint(TinyModels.Config, Seed);
        Assert.Equal(random.Tensors.Keys.Order(), weightMap.Keys.Order());
        Assert.Equal("model-00001-of-00004.safetensors", weightMap["transformer.wte.weight"]);
        Assert.All(weightMap.Where(p => p.Key.StartsWith("transformer.h.0.")), p => Assert.Equal("model-00002-of-00004.safetensors", p.Value));
        Assert.All(weightMap.Where(p => p.Key.StartsWith("transformer.h.1.") || p.Key.StartsWith("transformer.ln_f.")),
            p => Assert.Equal("model-00003-of-00004.safetensors", p.Value));
        Assert.Equal("model-00004-of-00004.safetensors", weightMap["lm_head.weight"]);
        Assert.Equal("model-00004-of-00004.safetensors", weightMap["lm_head.bias"]);
    }

    [Fact]
    public void ACheckpointThatFitsOneShardIsASingleFileWithoutIndex()
    {
        var result = SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out());

        Assert.Equal(["config.json", "model.safetensors", "vocab.json", "merges.txt"], result.Files);
        Assert.Equal(["model.safetensors"], result.ShardFiles);
        Assert.Equal("model.safetensors", Path.GetFileName(CheckpointFiles.Locate(Out())));
        using var loaded = ModelLoader.LoadFolder(Out(), Cpu);
        using var direct = TinyModels.Create(TinyModels.Config, ScalarType.Float32, Seed);
        AssertSameParameters(direct, loaded.Model, dtype: null);
    }

    [Fact]
    public void WritingTwiceGivesByteIdenticalFilesAndAnotherSeedOtherWeights()
    {
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float16, Out("a"), Float32ShardBytes / 2);
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float16, Out("b"), Float32ShardBytes / 2);
        SyntheticCheckpoint.Write(TinyModels.Config, Seed + 1, ScalarType.Float16, Out("c"), Float32ShardBytes / 2);

        var names = Directory.GetFiles(Out("a")).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(names, Directory.GetFiles(Out("b")).Select(Path.GetFileName).Order());
        Assert.All(names, name => Assert.Equal(File.ReadAllBytes(Path.Combine(Out("a"), name!)), File.ReadAllBytes(Path.Combine(Out("b"), name!))));
        Assert.NotEqual(
            File.ReadAllBytes(Path.Combine(Out("a"), "model-00002-of-00004.safetensors")),
            File.ReadAllBytes(Path.Combine(Out("c"), "model-00002-of-00004.safetensors")));
    }

    [Fact]
    public void ConfigJsonIsTheModelConfigWithTheStoredDtype()
    {
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.BFloat16, Out());

        var path = Path.Combine(Out(), "config.json");
        Assert.Equal(TinyModels.Config with { TorchDtype = "bfloat16" }, GptJConfig.Load(path));
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        Assert.Equal("GPTJForCausalLM", (string)json["architectures"]![0]!);
        Assert.Equal("gptj", (string)json["model_type"]!);
        // Only config.json keys, none of GptJConfig's derived properties.
        Assert.DoesNotContain(json, p => p.Key is "HeadDim" or "EffectiveRotaryDim" or "EffectiveInnerSize");
    }

    [Fact]
    public void TheFolderHasGpt2sTokenizerFiles()
    {
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out());
        var tokenizer = Gpt2Tokenizer.FromFolder(Out());
        Assert.Contains("vocab.json", tokenizer.Source);
        Assert.Equal(Gpt2Tokenizer.BuiltIn().Encode("Hello world, said the tiny model."), tokenizer.Encode("Hello world, said the tiny model."));
    }

    [Fact]
    public void ANonEmptyFolderIsNotOverwrittenWithoutOverwrite()
    {
        Directory.CreateDirectory(Out());
        File.WriteAllText(Path.Combine(Out(), "keep.txt"), "mine");

        var error = Assert.Throws<IOException>(() => SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out()));
        Assert.Contains("not empty", error.Message);
        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(Out()).Select(Path.GetFileName));
        Assert.Equal(["model"], Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName)); // no staging folder left

        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), overwrite: true);
        Assert.False(File.Exists(Path.Combine(Out(), "keep.txt")));
        Assert.True(File.Exists(Path.Combine(Out(), "model.safetensors")));
        Assert.Equal(["model"], Directory.GetFileSystemEntries(_temp.Path).Select(Path.GetFileName)); // nor the replaced folder
    }

    [Fact]
    public void AnEmptyFolderIsUsedAndAFileIsRefused()
    {
        Directory.CreateDirectory(Out());
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out());
        Assert.True(File.Exists(Path.Combine(Out(), "model.safetensors")));

        File.WriteAllText(Out("file"), "");
        var error = Assert.Throws<IOException>(() => SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out("file"), overwrite: true));
        Assert.Contains("is a file", error.Message);
    }

    [Fact]
    public void MissingParentFoldersAreCreated()
    {
        var nested = Path.Combine(_temp.Path, "a", "b", "model");
        SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, nested);
        Assert.True(File.Exists(Path.Combine(nested, "config.json")));
    }

    [Fact]
    public void CancellingLeavesNothingBehind()
    {
        using var cancel = new CancellationTokenSource();
        var progress = new Recorder(p => { if (p.TensorsWritten == 5) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), Float32ShardBytes, progress: progress, cancellationToken: cancel.Token));
        Assert.Empty(Directory.GetFileSystemEntries(_temp.Path));
    }

    [Fact]
    public void ProgressCountsEveryTensorAndEveryCompletedShard()
    {
        var progress = new Recorder();
        var result = SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), Float32ShardBytes, progress: progress);

        Assert.Equal(Enumerable.Range(1, result.TensorCount), progress.Reports.Select(r => r.TensorsWritten));
        Assert.All(progress.Reports, r => Assert.Equal(result.TensorCount, r.TensorCount));
        Assert.Equal(result.TensorBytes, progress.Reports[^1].BytesWritten);
        Assert.Equal(progress.Reports.Select(r => r.BytesWritten).Order(), progress.Reports.Select(r => r.BytesWritten));
        Assert.Equal([1, 2, 3, 4], progress.Reports.Where(r => r.ShardComplete).Select(r => r.Shard));
        Assert.Equal(result.TensorCount, progress.Reports.Select(r => r.LastTensor).Distinct().Count());
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Int8, Out()));
        Assert.Throws<ArgumentException>(() => SyntheticCheckpoint.Write(TinyModels.Config, Seed, ScalarType.Float32, Out(), maxShardBytes: 0));
        Assert.Throws<InvalidDataException>(() => SyntheticCheckpoint.Write(TinyModels.Config with { HeadCount = 5 }, Seed, ScalarType.Float32, Out()));
        Assert.False(Directory.Exists(Out()));
    }

    [Fact]
    public void GptJ6BInFloat16FillsSixShardsOfWholeLayersUnder2GiB()
    {
        // Shapes only (a meta-device model): the plan make-checkpoint --preset gptj-6b follows.
        using var meta = new GptJForCausalLM(GptJConfig.GptJ6B, ScalarType.Float16, device("meta"));
        var tensors = SyntheticCheckpoint.ModelOrder(meta.named_parameters().Select(p => new CheckpointTensorInfo(p.name, ScalarType.Float16, p.parameter.shape)));
        var shards = SyntheticCheckpoint.PlanShards(tensors, SyntheticCheckpoint.DefaultMaxShardBytes);

        Assert.Equal(6, shards.Count);
        Assert.Equal(12_101_765_568L, shards.Sum(s => s.Sum(t => t.ElementCount * 2)));
        Assert.All(shards, s => Assert.InRange(s.Sum(t => t.ElementCount * 2), 1L << 30, SyntheticCheckpoint.DefaultMaxShardBytes));
        Assert.Equal("transformer.wte.weight", shards[0][0].Name);
        Assert.Equal("lm_head.bias", shards[^1][^1].Name);
        Assert.Equal(tensors, shards.SelectMany(s => s));
        for (var layer = 0; layer < 28; layer++)
            Assert.Single(shards, s => s.Any(t => t.Name.StartsWith($"transformer.h.{layer}.", StringComparison.Ordinal)));
        Assert.Equal([4, 5, 5, 5, 5, 4], shards.Select(s => s.Select(t => t.Name).Where(n => n.EndsWith(".ln_1.weight")).Count()));
    }

    [Fact]
    public void ATensorGroupLargerThanTheShardLimitGetsAShardOfItsOwn()
    {
        using var random = new RandomCheckpoint(TinyModels.Config, Seed);
        var tensors = SyntheticCheckpoint.ModelOrder(random.Tensors.Values);
        var shards = SyntheticCheckpoint.PlanShards(tensors, maxShardBytes: 1);
        Assert.Equal(5, shards.Count); // wte, h.0, h.1, ln_f, lm_head
        Assert.Equal(["lm_head.weight", "lm_head.bias"], shards[^1].Select(t => t.Name));
    }

    private static void AssertSameParameters(CausalLM expected, CausalLM actual, ScalarType? dtype)
    {
        var actualParameters = actual.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in expected.named_parameters())
        {
            using var want = dtype is { } rounded ? parameter.to(rounded).to(ScalarType.Float32) : parameter.alias();
            Assert.True(actualParameters[name].eq(want).all().item<bool>(), name);
        }
    }

    private sealed class Recorder(Action<SyntheticCheckpointProgress>? onReport = null) : IProgress<SyntheticCheckpointProgress>
    {
        public List<SyntheticCheckpointProgress> Reports { get; } = [];

        public void Report(SyntheticCheckpointProgress value)
        {
            Reports.Add(value);
            onReport?.Invoke(value);
        }
    }
}
