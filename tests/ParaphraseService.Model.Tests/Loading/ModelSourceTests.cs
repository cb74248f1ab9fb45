using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Checkpoints.Hub;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests.Hub;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

public class ModelSourceTests
{
    private static readonly ModelLoadOptions Cpu = new() { Device = "cpu" };

    [Fact]
    public async Task HubIdDownloadsIntoTheCacheLoadsAndThenWorksOffline()
    {
        await using var hub = await FakeHub.StartAsync();
        var folder = Fixtures.Get("gptj-tiny", "sharded-safetensors");
        var files = Directory.GetFiles(folder).Select(path => Path.GetExtension(path) == ".safetensors"
            ? new FakeHubFile(Path.GetFileName(path), File.ReadAllBytes(path), Lfs: true)
            : FakeHubFile.Text(Path.GetFileName(path), File.ReadAllText(path))).ToList();
        hub.AddRepo("tiny-org/gptj-tiny").AddCommit(new string('a', 40), files, "main");
        using var cache = new TempDirectory();
        var options = new HubOptions { Endpoint = hub.Endpoint, CacheDirectory = cache.Path, BaseDelay = TimeSpan.Zero };

        using (var online = await ModelSource.LoadAsync("tiny-org/gptj-tiny", Cpu, progress: null, CancellationToken.None, options))
        {
            Assert.Equal("tiny-org/gptj-tiny", online.Source);
            Assert.False(online.IsDemo);
            AssertMatchesGolden(online);
        }
        var requests = hub.Recorded.Count;
        using var offline = await ModelSource.LoadAsync("tiny-org/gptj-tiny", Cpu, null, CancellationToken.None, options with { Offline = true });
        AssertMatchesGolden(offline);
        Assert.Equal(requests, hub.Recorded.Count);
    }

    [Fact]
    public async Task DemoRandomIsTheSmallRandomGptJAndSaysSo()
    {
        using var demo = await ModelSource.LoadAsync("demo-random", Cpu, null, CancellationToken.None);
        Assert.True(demo.IsDemo);
        Assert.Equal(50400, demo.Config.VocabSize);
        Assert.Equal(DeviceType.CPU, demo.Model.parameters().First().device_type);

        // Deterministic: a second load has bit-identical weights.
        using var again = await ModelSource.LoadAsync("DEMO-RANDOM", Cpu, null, CancellationToken.None);
        Assert.All(demo.Model.named_parameters().Zip(again.Model.named_parameters()),
            pair => Assert.True(pair.First.parameter.eq(pair.Second.parameter).all().item<bool>(), pair.First.name));
    }

    [Theory]
    [InlineData("/no/such/model", "does not exist")]
    [InlineData("./relative/missing/model", "does not exist")]
    [InlineData("not a model id", "not a hub id")]
    public async Task UnknownSourcesAreExplained(string source, string expected)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => ModelSource.LoadAsync(source, Cpu, null, CancellationToken.None));
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("KvCache", "Unknown KV cache dtype 'fp8'")]
    [InlineData("Quantization", "Unknown quantization 'int4'")]
    [InlineData("Dtype", "Unknown dtype 'half8'")]
    public async Task AnUnknownSettingIsRefusedBeforeAnythingIsDownloaded(string setting, string expected)
    {
        await using var hub = await FakeHub.StartAsync();
        using var cache = new TempDirectory();
        var options = setting switch
        {
            "KvCache" => Cpu with { KvCache = "fp8" },
            "Quantization" => Cpu with { Quantization = "int4" },
            _ => Cpu with { Dtype = "half8" },
        };
        var error = await Assert.ThrowsAsync<ArgumentException>(() => ModelSource.LoadAsync("tiny-org/never-asked", options, null, CancellationToken.None,
            new HubOptions { Endpoint = hub.Endpoint, CacheDirectory = cache.Path, BaseDelay = TimeSpan.Zero }));
        Assert.Contains(expected, error.Message);
        Assert.Empty(hub.Recorded);
    }

    private static void AssertMatchesGolden(LoadedModel model)
    {
        using var golden = new SafetensorsReader(Fixtures.Get("gptj-tiny", "golden.safetensors"));
        using var ids = golden.Read("single.input_ids");
        using var expected = golden.Read("single.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids));
        Assert.True(logits.allclose(expected, rtol: 0, atol: 1e-5));
    }
}
