using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Model.Tests.Hub;

public sealed class HubFileSelectorTests
{
    [Theory]
    [InlineData("model.safetensors", "model.safetensors.index.json,model.safetensors,pytorch_model.bin.index.json,pytorch_model.bin")]
    [InlineData("model.safetensors.index.json", "model.safetensors.index.json,pytorch_model.bin.index.json,pytorch_model.bin")]
    [InlineData("pytorch_model.bin", "pytorch_model.bin.index.json,pytorch_model.bin")]
    [InlineData("pytorch_model.bin.index.json", "pytorch_model.bin.index.json")]
    public void PrefersSafetensorsAndASingleFileOverAnIndexAsTransformersDoes(string expected, string weightFiles)
    {
        var selection = HubFileSelector.Select(["config.json", "README.md", .. weightFiles.Split(',')], "repo");

        Assert.Equal(expected, selection.Files[^1]);
        Assert.Equal(expected.EndsWith(".index.json", StringComparison.Ordinal) ? expected : null, selection.WeightIndex);
    }

    [Fact]
    public void TakesConfigAndTheTokenizerFilesPresent()
    {
        var selection = HubFileSelector.Select(["merges.txt", "config.json", "vocab.json", "tokenizer_config.json", "model.safetensors", "flax_model.msgpack"], "repo");

        Assert.Equal(["config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "model.safetensors"], selection.Files);
    }

    [Fact]
    public void NoWeightsIsAnErrorListingTheFiles()
    {
        var error = Assert.Throws<HubException>(() => HubFileSelector.Select(["config.json", "tf_model.h5", "README.md"], "org/x at commit abc"));

        Assert.Equal(HubErrorKind.UnsupportedRepository, error.Kind);
        Assert.Contains("org/x at commit abc", error.Message, StringComparison.Ordinal);
        Assert.Contains("README.md, config.json, tf_model.h5", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoConfigIsAnError()
    {
        var error = Assert.Throws<HubException>(() => HubFileSelector.Select(["model.safetensors"], "repo"));

        Assert.Contains("config.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadsEachShardOnceInOrder()
    {
        using var dir = new TempDirectory();
        var index = Path.Combine(dir.Path, "index.json");
        File.WriteAllText(index, """{"metadata":{},"weight_map":{"a":"s-1.safetensors","b":"s-2.safetensors","c":"s-1.safetensors"}}""");

        Assert.Equal(["s-1.safetensors", "s-2.safetensors"], HubFileSelector.ReadShards(index, "index.json", "repo"));
    }

    [Theory]
    [InlineData("""{"weight_map":{"a":"../../../etc/passwd"}}""")]
    [InlineData("""{"weight_map":{"a":"/abs.safetensors"}}""")]
    [InlineData("""{"weight_map":{}}""")]
    [InlineData("""{"metadata":{}}""")]
    [InlineData("""not json""")]
    public void RejectsUnusableIndexes(string json)
    {
        using var dir = new TempDirectory();
        var index = Path.Combine(dir.Path, "index.json");
        File.WriteAllText(index, json);

        var error = Assert.Throws<HubException>(() => HubFileSelector.ReadShards(index, "index.json", "repo"));

        Assert.Equal(HubErrorKind.UnsupportedRepository, error.Kind);
    }

    [LinuxFact]
    public async Task RefusesAnIndexThatIsANamedPipe()
    {
        using var dir = new TempDirectory();
        var index = Path.Combine(dir.Path, "model.safetensors.index.json");
        NamedPipes.Create(index);

        var error = await NamedPipes.RefusedAsync<HubException>(() => HubFileSelector.ReadShards(index, "model.safetensors.index.json", "repo"));

        Assert.Equal(HubErrorKind.UnsupportedRepository, error.Kind);
        Assert.Contains($"{index} is not a regular file but a named pipe (FIFO)", error.Message, StringComparison.Ordinal);
    }
}
