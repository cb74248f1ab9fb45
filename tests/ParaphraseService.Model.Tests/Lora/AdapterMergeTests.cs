using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora;

public sealed class AdapterMergeTests : IDisposable
{
    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private readonly string _root = Directory.CreateTempSubdirectory("lora-merge-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void MergedFolderComputesWhatTheBaseWithTheAdapterComputes()
    {
        var config = GptJConfig.Load(Path.Combine(Base, "config.json"));
        using var checkpoint = CheckpointFiles.Open(Base);
        using var model = ModelLoader.Build(config, checkpoint, new LayerFactory(ScalarType.Float32, CPU, Lora: new LoraRouting()), "base");
        using var registry = new AdapterRegistry(model, 1);
        var generator = new Generator(11, CPU);
        var targets = registry.Targets.Where(t => !t.Key.EndsWith("k_proj", StringComparison.Ordinal));
        var adapter = LoraAdapter.FromWeights("style", 1.5, 0,
            targets.ToDictionary(t => t.Key, t => (randn([4, t.Value.In], generator: generator) * 0.2f, randn([t.Value.Out, 4], generator: generator) * 0.2f)), CPU);
        registry.Load(adapter);

        var output = Path.Combine(_root, "merged");
        AdapterMerge.Export(Base, adapter, output);
        using var merged = ModelLoader.LoadFolder(output, new ModelLoadOptions { Device = "cpu" });
        Assert.True(File.Exists(Path.Combine(output, "config.json")));

        using var ids = tensor(new long[] { 4, 8, 15, 16, 23, 42 }).unsqueeze(0);
        using var noGrad = no_grad();
        using var expected = model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var actual = merged.Model.forward(new CausalLMInput(ids));
        using var baseOnly = model.forward(new CausalLMInput(ids));
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-5), $"max |Δ| {(actual - expected).abs().max().item<float>()}");
        Assert.False(actual.allclose(baseOnly, rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void Int8BaseIsRefused()
    {
        var int8 = Path.Combine(_root, "int8");
        QuantizedCheckpoint.Write(Base, int8);
        using var adapter = LoraAdapter.FromWeights("x", 1, 0,
            new Dictionary<string, (Tensor, Tensor)> { ["transformer.h.0.attn.q_proj"] = (ones(2, 64), ones(64, 2)) }, CPU);
        var error = Assert.Throws<CheckpointException>(() => AdapterMerge.Export(int8, adapter, Path.Combine(_root, "out")));
        Assert.Contains("int8", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "out")));
    }

    [LinuxFact]
    public async Task ANamedPipeAmongTheTokenizerFilesIsRefusedBeforeAnythingIsWritten()
    {
        var source = Path.Combine(_root, "base");
        Directory.CreateDirectory(source);
        foreach (var file in Directory.GetFiles(Base))
            File.Copy(file, Path.Combine(source, Path.GetFileName(file)));
        var pipe = Path.Combine(source, "merges.txt");
        NamedPipes.Create(pipe);
        using var adapter = LoraAdapter.FromWeights("x", 1, 0,
            new Dictionary<string, (Tensor, Tensor)> { ["transformer.h.0.attn.q_proj"] = (ones(2, 64), ones(64, 2)) }, CPU);

        var error = await NamedPipes.RefusedAsync<CheckpointException>(() => AdapterMerge.Export(source, adapter, Path.Combine(_root, "out")));

        Assert.Equal($"{pipe}: not a regular file but a named pipe (FIFO)", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "out")));
    }
}
