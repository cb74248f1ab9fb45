using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

public sealed class CheckpointFilesTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public void PrefersSafetensorsOverPicklesAndASingleFileOverAnIndexAsTransformersDoes()
    {
        foreach (var name in CheckpointFiles.PreferenceOrder)
        {
            File.WriteAllBytes(_temp.File(name), []);
        }
        File.WriteAllBytes(_temp.File("model.bin"), []);

        Assert.Equal(["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"], CheckpointFiles.PreferenceOrder);
        foreach (var expected in CheckpointFiles.PreferenceOrder)
        {
            Assert.Equal(_temp.File(expected), CheckpointFiles.Locate(_temp.Path));
            File.Delete(_temp.File(expected));
        }
    }

    [Fact]
    public void OpensTheKindOfSourceEachFileNeeds()
    {
        using var t = TestTensors.Ramp(ScalarType.Float32, 2);
        SafetensorsWriter.Write(_temp.File("model.safetensors"), new Dictionary<string, Tensor> { ["t"] = t });
        File.Copy(Fixtures.Get("checkpoint-formats", "views.bin"), _temp.File("pytorch_model.bin"));

        using (var source = CheckpointFiles.Open(_temp.Path))
        {
            Assert.IsType<SafetensorsReader>(source);
        }
        File.Delete(_temp.File("model.safetensors"));
        using (var source = CheckpointFiles.Open(_temp.Path))
        {
            Assert.IsType<PyTorchCheckpointReader>(source);
            Assert.Contains("head", source.Tensors.Keys);
        }
        using (var source = CheckpointFiles.Open(Fixtures.Get("checkpoint-formats", "sharded_bin")))
        {
            Assert.IsType<ShardedCheckpointSource>(source);
        }
    }

    [Fact]
    public void FolderWithoutCheckpointListsWhatWasLookedForAndWhatIsThere()
    {
        File.WriteAllText(_temp.File("config.json"), "{}");
        File.WriteAllText(_temp.File("tokenizer.json"), "{}");
        File.WriteAllBytes(_temp.File("model.bin"), []);

        var error = Assert.Throws<CheckpointException>(() => CheckpointFiles.Open(_temp.Path));

        Assert.StartsWith(_temp.Path, error.Message, StringComparison.Ordinal);
        Assert.Contains("looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json",
            error.Message, StringComparison.Ordinal);
        Assert.Contains("it contains config.json, model.bin, tokenizer.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LongListingsAreCut()
    {
        for (var i = 0; i < 15; i++)
        {
            File.WriteAllText(_temp.File($"file{i:D2}.txt"), "");
        }

        var error = Assert.Throws<CheckpointException>(() => CheckpointFiles.Locate(_temp.Path));

        Assert.Contains("file09.txt and 5 more", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("file10.txt", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyFolderSaysSo()
    {
        var error = Assert.Throws<CheckpointException>(() => CheckpointFiles.Locate(_temp.Path));

        Assert.EndsWith("the folder is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFolderIsReported()
    {
        var folder = Path.Combine(_temp.Path, "nope");

        var error = Assert.Throws<CheckpointException>(() => CheckpointFiles.Open(folder));

        Assert.Equal($"{folder}: checkpoint folder does not exist", error.Message);
    }

    public void Dispose() => _temp.Dispose();
}
