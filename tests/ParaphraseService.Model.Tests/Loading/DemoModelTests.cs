using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Loading;

public class DemoModelTests
{
    private static readonly ModelLoadOptions Cpu = new() { Device = "cpu" };

    [Fact]
    public async Task DemoIsTheTrainedModelWithItsAdapterBesideTheAssembly()
    {
        using var demo = await ModelSource.LoadAsync("demo", Cpu with { MaxResidentAdapters = 1 }, null, CancellationToken.None);

        Assert.True(demo.IsDemo);
        Assert.Equal("demo", demo.Source);
        Assert.Equal(DemoModel.Notice, demo.Notice);
        Assert.Equal(("gptj", 1024, 512, 256, 4), (demo.Config.ModelType, demo.Config.VocabSize, demo.Config.MaxPositions, demo.Config.HiddenSize, demo.Config.LayerCount));
        Assert.Equal(1024, demo.Tokenizer.VocabularySize);
        Assert.Equal(demo.Config.EosTokenId, demo.Tokenizer.EndOfTextTokenId);
        // <|endoftext|> is no text (banned text and stop sequences never see it), the bytes and merges are their bytes.
        var tokenizer = demo.Tokenizer;
        Assert.Empty(tokenizer.TokenBytes[tokenizer.EndOfTextTokenId]);
        Assert.Equal("Köroğlu"u8.ToArray(), tokenizer.Encode("Köroğlu").SelectMany(id => tokenizer.TokenBytes[id]).ToArray());
        Assert.Equal(" the"u8.ToArray(), tokenizer.Encode(" the").SelectMany(id => tokenizer.TokenBytes[id]).ToArray());
        var parameters = demo.Model.parameters().Sum(p => p.numel());
        Assert.InRange(parameters, 3_000_000, 4_000_000);

        var adapter = Assert.IsType<BundledAdapter>(demo.BundledAdapter);
        Assert.Equal(DemoModel.AdapterName, adapter.Name);
        Assert.StartsWith(Path.GetDirectoryName(typeof(DemoModel).Assembly.Location)!, adapter.Folder);
        foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors", "paraphrase_adapter.json" })
            Assert.True(File.Exists(Path.Combine(adapter.Folder, file)), file);
        var (lora, _, warnings) = demo.Adapters!.LoadFolder(adapter.Folder, adapter.Name);
        Assert.Empty(warnings);
        Assert.Equal(DemoModel.AdapterName, lora.Name);
    }

    [Fact]
    public void TheDemoFilesAreWhatTheRepositoryHolds()
    {
        var source = Fixtures.Get("..", "..", "src", "ParaphraseService.Model", "Demo");
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("training-log.txt", StringComparison.Ordinal)))
        {
            var copied = Path.Combine(DemoModel.Root, Path.GetRelativePath(source, file));
            Assert.True(File.Exists(copied), $"{copied} was not copied beside the assembly");
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(copied));
        }
    }

    [Fact]
    public async Task DemoRandomKeepsTheRandomModelWithGpt2sVocabulary()
    {
        using var random = await ModelSource.LoadAsync("demo-random", Cpu, null, CancellationToken.None);

        Assert.True(random.IsDemo);
        Assert.Equal(RandomDemoModel.SourceName, random.Source);
        Assert.Contains("random", random.Notice);
        Assert.Null(random.BundledAdapter);
        Assert.Equal(RandomDemoModel.Config, random.Config);
        Assert.Equal([15496, 995, 0], random.Tokenizer.Encode("Hello world!"));
        Assert.Equal(Gpt2Tokenizer.EndOfTextId, random.Tokenizer.EndOfTextTokenId);
        Assert.Same(RandomDemoModel.Config, DemoModel.Config); // the shape tests build tiny random GPT-Js from
    }
}
