using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora.Peft;

public sealed class PeftAdapterSaveTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("q-v")]
    [InlineData("regex-mlp")]
    [InlineData("all-linear-rslora")]
    public void SaveThenLoadGivesTheSameAdapter(string fixture)
    {
        using var original = PeftAdapterFiles.Load(PeftFixtures.Folder(fixture), PeftFixtures.Target);
        var folder = _temp.File("saved");

        PeftAdapterFiles.Save(folder, original);
        using var again = PeftAdapterFiles.Load(folder, PeftFixtures.Target, name: original.Name);

        Assert.Equal(original.Config, again.Config);
        Assert.Equal(original.Metadata, again.Metadata);
        Assert.Equal(original.Modules.Keys, again.Modules.Keys);
        foreach (var (module, weights) in original.Modules)
        {
            TestTensors.AssertSame(weights.A, again.Modules[module].A, $"{module} lora_A");
            TestTensors.AssertSame(weights.B, again.Modules[module].B, $"{module} lora_B");
        }
        // The config file is the one PEFT wrote, byte for byte.
        Assert.Equal(File.ReadAllText(Path.Combine(PeftFixtures.Folder(fixture), "adapter_config.json")),
            File.ReadAllText(Path.Combine(folder, "adapter_config.json")));
    }

    [Fact]
    public void WritesPeftsStandardKeysAsFloat32WithPtMetadata()
    {
        // Read from the fp16 file with adapter-named keys: written back in the standard form, as float32.
        var source = PeftFixtures.Copy("q-v-fp16", _temp.File("source"));
        PeftFixtures.EditTensors(source, tensors =>
        {
            foreach (var key in tensors.Keys.ToList())
            {
                tensors.Remove(key, out var tensor);
                tensors[key.Replace(".weight", ".default.weight")] = tensor!;
            }
        });
        using var adapter = PeftAdapterFiles.Load(source, PeftFixtures.Target);
        var folder = _temp.File("saved");

        PeftAdapterFiles.Save(folder, adapter);

        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order());
        using var reader = new SafetensorsReader(Path.Combine(folder, "adapter_model.safetensors"));
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, reader.Metadata);
        string[] modules = ["transformer.h.0.attn.q_proj", "transformer.h.0.attn.v_proj", "transformer.h.1.attn.q_proj", "transformer.h.1.attn.v_proj"];
        var expected = modules.SelectMany(m => new[] { $"base_model.model.{m}.lora_A.weight", $"base_model.model.{m}.lora_B.weight" }).Order();
        Assert.Equal(expected, reader.Tensors.Keys.Order());
        Assert.All(reader.Tensors.Values, info => Assert.Equal(ScalarType.Float32, info.DType));
        Assert.Equal([4L, 64L], reader.Tensors["base_model.model.transformer.h.1.attn.v_proj.lora_A.weight"].Shape);
        Assert.Equal([64L, 4L], reader.Tensors["base_model.model.transformer.h.1.attn.v_proj.lora_B.weight"].Shape);
    }

    [Fact]
    public void MetadataAttachedToAnUploadIsSavedBesideThePeftFiles()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        adapter.Metadata = new AdapterMetadata
        {
            Origin = AdapterOrigin.Upload,
            Created = new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero),
            PromptTemplate = "Say it differently: {text}",
        };
        var folder = _temp.File("upload");

        PeftAdapterFiles.Save(folder, adapter);
        using var again = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(adapter.Metadata, again.Metadata);
        Assert.True(File.Exists(Path.Combine(folder, "paraphrase_adapter.json")));
    }

    [Fact]
    public void SavingOverAnAdapterReplacesItWhole()
    {
        var folder = PeftFixtures.Copy("all-linear-rslora", _temp.File("adapter"));
        File.WriteAllText(Path.Combine(folder, "README.md"), "from the previous version");
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);

        PeftAdapterFiles.Save(folder, adapter);

        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order());
        using var again = PeftAdapterFiles.Load(folder, PeftFixtures.Target);
        Assert.Equal(4, again.Modules.Count);
        Assert.Equal(["adapter"], Directory.EnumerateFileSystemEntries(_temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedSaveLeavesNoFolderBehind()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        // Written last, after the config and the weights: the save fails part way through.
        adapter.Metadata = new AdapterMetadata { Origin = AdapterOrigin.FineTune, Created = DateTimeOffset.UtcNow, Training = default(JsonElement) };
        var parent = _temp.File("adapters");
        Directory.CreateDirectory(parent);

        Assert.Throws<InvalidOperationException>(() => PeftAdapterFiles.Save(Path.Combine(parent, "new"), adapter));

        Assert.Empty(Directory.EnumerateFileSystemEntries(parent));
    }

    [Fact]
    public void AFailedSaveLeavesThePreviousAdapterAsItWas()
    {
        var parent = _temp.File("adapters");
        var folder = PeftFixtures.Copy("all-linear-rslora", Path.Combine(parent, "paws"));
        var before = Directory.EnumerateFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        adapter.Metadata = new AdapterMetadata { Origin = AdapterOrigin.FineTune, Created = DateTimeOffset.UtcNow, Training = default(JsonElement) };

        Assert.Throws<InvalidOperationException>(() => PeftAdapterFiles.Save(folder, adapter));

        Assert.Equal(["paws"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName));
        var after = Directory.EnumerateFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(before, file => Assert.Equal(file.Value, after[file.Key]));
    }

    [Fact]
    public void AFileInTheWayIsRefusedBeforeWriting()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        var path = _temp.File("taken");
        File.WriteAllText(path, "not a folder");

        Assert.Throws<IOException>(() => PeftAdapterFiles.Save(path, adapter));

        Assert.Equal(["taken"], Directory.EnumerateFileSystemEntries(_temp.Path).Select(Path.GetFileName));
        Assert.Equal("not a folder", File.ReadAllText(path));
    }

    [Fact]
    public void ADisposedAdapterCannotBeSaved()
    {
        var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        adapter.Dispose();

        Assert.Throws<ObjectDisposedException>(() => PeftAdapterFiles.Save(_temp.File("gone"), adapter));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_temp.Path));
    }
}
