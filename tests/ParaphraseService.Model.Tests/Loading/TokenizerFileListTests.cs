using ParaphraseService.Model.Checkpoints.Hub;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

/// <summary>
/// The tokenizer files a model folder carries, listed once (CheckpointFiles.TokenizerFiles) for the hub download, the
/// int8 copy and the merged copy, which each kept a list of their own.
/// </summary>
public sealed class TokenizerFileListTests : IDisposable
{
    // Spelled out, so a name dropped from the list in the code under test shows.
    private static readonly string[] TokenizerFiles =
        ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    private readonly string _root = Directory.CreateTempSubdirectory("tokenizer-files-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void TheHubFetchesAndTheInt8AndMergedCopiesTakeAlongEveryTokenizerFile()
    {
        var source = Path.Combine(_root, "base");
        Directory.CreateDirectory(source);
        foreach (var file in Directory.GetFiles(Fixtures.Get("gptj-tiny", "safetensors")))
            File.Copy(file, Path.Combine(source, Path.GetFileName(file)));
        foreach (var name in TokenizerFiles)
            File.WriteAllText(Path.Combine(source, name), $"the {name} of the base");

        var selection = HubFileSelector.Select(Directory.GetFiles(source).Select(Path.GetFileName).ToList()!, "repo");
        Assert.Equal(["config.json", .. TokenizerFiles, "model.safetensors"], selection.Files);

        QuantizedCheckpoint.Write(source, Path.Combine(_root, "int8"));
        using (var adapter = LoraAdapter.FromWeights("x", 1, 0,
            new Dictionary<string, (Tensor, Tensor)> { ["transformer.h.0.attn.q_proj"] = (ones(2, 64), zeros(64, 2)) }, CPU))
            AdapterMerge.Export(source, adapter, Path.Combine(_root, "merged"));

        foreach (var copy in new[] { "int8", "merged" })
            foreach (var name in TokenizerFiles)
                Assert.Equal($"the {name} of the base", File.ReadAllText(Path.Combine(_root, copy, name)));
    }

    [Fact]
    public void TheNamesOnlyTheListUsesAreSpelledOnceInTheSource()
    {
        // vocab.json, merges.txt and tokenizer.json are also read by name (Gpt2Tokenizer); these three are only listed.
        var source = Path.GetFullPath(Path.Combine(Fixtures.Get(), "..", "..", "src", "ParaphraseService.Model"));
        var code = Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(source, f).Replace('\\', '/'))
            .Where(f => !f.StartsWith("bin/", StringComparison.Ordinal) && !f.StartsWith("obj/", StringComparison.Ordinal))
            .ToDictionary(f => f, f => File.ReadAllText(Path.Combine(source, f)));
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json" })
            Assert.Equal(["Checkpoints/CheckpointFiles.cs"], code.Where(f => f.Value.Contains($"\"{name}\"", StringComparison.Ordinal)).Select(f => f.Key));
    }
}
