namespace ParaphraseService.Model.Checkpoints;

/// <summary>Finds and opens the checkpoint in a Hugging Face model folder.</summary>
public static class CheckpointFiles
{
    /// <summary>
    /// The file names looked for, most preferred first, in Transformers' order (from_pretrained): safetensors over
    /// pickles, and a single file over an index, so a folder that has both loads the weights Transformers would.
    /// </summary>
    public static IReadOnlyList<string> PreferenceOrder { get; } =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    /// <summary>
    /// The tokenizer files a model folder may hold beside config.json and the weights: what a download fetches and a
    /// quantized or merged copy takes along, in this order. Gpt2Tokenizer reads the first three; the others are
    /// Transformers' settings, kept so the folder still loads there.
    /// </summary>
    public static IReadOnlyList<string> TokenizerFiles { get; } =
        ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    /// <summary>The paths of those of <paramref name="names"/> that are in <paramref name="folder"/>, to be copied.</summary>
    /// <exception cref="CheckpointException">One is not a regular file: copying a named pipe would wait for a writer.</exception>
    internal static IReadOnlyList<string> FilesToCopy(string folder, IEnumerable<string> names)
    {
        var paths = names.Select(name => Path.Combine(folder, name)).Where(File.Exists).ToList();
        foreach (var path in paths)
        {
            if (RegularFiles.Problem(path) is { } problem)
            {
                throw new CheckpointException($"{path}: {problem}");
            }
        }
        return paths;
    }

    /// <summary>Opens the preferred checkpoint file in <paramref name="folder"/>.</summary>
    /// <exception cref="CheckpointException">The folder is missing, holds no checkpoint, or the checkpoint is unusable.</exception>
    public static ICheckpointSource Open(string folder) => OpenFile(Locate(folder));

    /// <summary>The path of the preferred checkpoint file in <paramref name="folder"/>, without opening it.</summary>
    /// <exception cref="CheckpointException">The folder is missing or holds none of <see cref="PreferenceOrder"/>.</exception>
    public static string Locate(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw new CheckpointException($"{folder}: checkpoint folder does not exist");
        }
        foreach (var name in PreferenceOrder)
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path))
            {
                return path;
            }
        }
        const int shown = 10;
        var contents = Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var listing = contents.Count == 0
            ? "the folder is empty"
            : "it contains " + string.Join(", ", contents.Take(shown)) + (contents.Count > shown ? $" and {contents.Count - shown} more" : "");
        throw new CheckpointException($"{folder}: no checkpoint found: looked for {string.Join(", ", PreferenceOrder)}; {listing}");
    }

    /// <summary>Opens one checkpoint file by its name: <c>*.index.json</c>, <c>*.safetensors</c>, else a torch.save file.</summary>
    public static ICheckpointSource OpenFile(string path)
    {
        if (path.EndsWith(".index.json", StringComparison.Ordinal))
        {
            return new ShardedCheckpointSource(path);
        }
        if (path.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            return new SafetensorsReader(path);
        }
        return new PyTorchCheckpointReader(path);
    }
}
