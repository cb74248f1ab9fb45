using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Writes a GPT-J model folder with deterministic random weights in the Hugging Face layout (<c>config.json</c>,
/// <c>model.safetensors</c> or shards with <c>model.safetensors.index.json</c>, GPT-2's <c>vocab.json</c> and
/// <c>merges.txt</c>), for tests and benchmarks of real-sized models without a download. The weights are those of
/// <see cref="RandomCheckpoint"/> with the same seed, converted to the requested dtype, so loading the folder gives
/// the model <see cref="RandomCheckpoint"/> builds (exactly in float32). Tensors are generated, converted and written
/// one at a time: memory holds at most one tensor in float32 and its conversion, never the model, so a 12 GB GPT-J-6B
/// float16 checkpoint is written in about 1.3 GB. The folder appears only when complete: it is written into a
/// hidden sibling folder that is then renamed.
/// </summary>
public static partial class SyntheticCheckpoint
{
    /// <summary>Hugging Face's default shard limit for <c>save_pretrained</c> in recent versions: 2 GiB.</summary>
    public const long DefaultMaxShardBytes = 2L << 30;

    public const string ConfigFileName = "config.json";
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    // Safetensors metadata save_pretrained writes; transformers checks "format" when it loads the file.
    private static readonly Dictionary<string, string> s_shardMetadata = new(StringComparer.Ordinal) { ["format"] = "pt" };

    /// <summary>Writes the folder and returns what it holds.</summary>
    /// <param name="config">The model shape; its <c>torch_dtype</c> is replaced by <paramref name="dtype"/>.</param>
    /// <param name="seed">The <see cref="RandomCheckpoint"/> seed: same seed, byte-identical files.</param>
    /// <param name="dtype">Float32, Float16 or BFloat16.</param>
    /// <param name="outputFolder">The model folder to create. It may exist if empty.</param>
    /// <param name="maxShardBytes">Most tensor bytes per shard file. Shards hold whole layers (and the embedding,
    /// the final LayerNorm and the head as units), in model order; a unit larger than the limit gets a shard of its
    /// own. When everything fits in one shard a single <c>model.safetensors</c> is written, without an index.</param>
    /// <param name="overwrite">Replace a non-empty existing folder (only once the new one is complete).</param>
    /// <param name="progress">Called on the writing thread after every tensor.</param>
    /// <exception cref="IOException">The folder exists and is not empty (without <paramref name="overwrite"/>), is a
    /// file, or the disk has too little free space.</exception>
    /// <exception cref="ArgumentException">An unsupported dtype or a shard size that is not positive.</exception>
    public static SyntheticCheckpointResult Write(
        GptJConfig config, long seed, ScalarType dtype, string outputFolder, long maxShardBytes = DefaultMaxShardBytes,
        bool overwrite = false, IProgress<SyntheticCheckpointProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputFolder);
        config.Validate();
        var dtypeName = DtypeName(dtype);
        if (maxShardBytes <= 0)
            throw new ArgumentException($"The shard size must be positive, not {maxShardBytes} bytes.", nameof(maxShardBytes));

        var clock = Stopwatch.StartNew();
        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputFolder));
        var parent = Path.GetDirectoryName(target) ?? throw new IOException($"{target}: cannot write a model folder at the file system root.");
        CheckTarget(target, overwrite);

        using var random = new RandomCheckpoint(config, seed);
        var tensors = ModelOrder(random.Tensors.Values).Select(t => t with { DType = dtype }).ToList();
        var shards = PlanShards(tensors, maxShardBytes);
        var totalBytes = tensors.Sum(Bytes);

        Directory.CreateDirectory(parent);
        CheckFreeSpace(parent, totalBytes);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            var files = new List<string>();
            WriteSmallFile(Path.Combine(staging, ConfigFileName), ConfigJson(config, dtypeName));
            files.Add(ConfigFileName);

            var shardNames = shards.Count == 1
                ? [SingleFileName]
                : shards.Select((_, i) => string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors")).ToList();
            var written = 0;
            long bytesWritten = 0;
            for (var s = 0; s < shards.Count; s++)
            {
                CheckpointTensorInfo? inFlight = null;
                void Done(bool shardComplete)
                {
                    written++;
                    bytesWritten += Bytes(inFlight!);
                    progress?.Report(new SyntheticCheckpointProgress(
                        written, tensors.Count, inFlight!.Name, s + 1, shards.Count, bytesWritten, totalBytes, clock.Elapsed, shardComplete));
                }
                // The writer asks for each tensor just before writing it, so asking for the next one means the previous one is on disk.
                SafetensorsWriter.Write(Path.Combine(staging, shardNames[s]), shards[s], info =>
                {
                    if (inFlight is not null) Done(shardComplete: false);
                    cancellationToken.ThrowIfCancellationRequested();
                    inFlight = info;
                    return Generate(random, info);
                }, s_shardMetadata);
                if (inFlight is not null) Done(shardComplete: true);
                files.Add(shardNames[s]);
            }

            if (shards.Count > 1)
            {
                WriteSmallFile(Path.Combine(staging, IndexFileName), IndexJson(shards, shardNames, totalBytes));
                files.Add(IndexFileName);
            }
            Gpt2TokenizerFiles.WriteTo(staging);
            files.AddRange(Gpt2TokenizerFiles.FileNames);

            cancellationToken.ThrowIfCancellationRequested();
            var folderBytes = files.Sum(f => new FileInfo(Path.Combine(staging, f)).Length);
            Publish(staging, target, overwrite);
            return new SyntheticCheckpointResult(target, files, shardNames, tensors.Count, totalBytes, folderBytes, clock.Elapsed);
        }
        catch
        {
            TryDelete(staging);
            throw;
        }
    }

    /// <summary>The Hugging Face <c>torch_dtype</c> name of a dtype a synthetic checkpoint can be written in.</summary>
    /// <exception cref="ArgumentException">Not Float32, Float16 or BFloat16.</exception>
    public static string DtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        _ => throw new ArgumentException($"Cannot write a checkpoint in {dtype}: use float32, float16 or bfloat16.", nameof(dtype)),
    };

    /// <summary>
    /// Tensors grouped into shards in model order (embedding, layer 0, 1, ..., final LayerNorm, head): a layer, or the
    /// tensors of one other module, always share a shard; a new shard starts when the next group would take the current
    /// one past <paramref name="maxShardBytes"/>.
    /// </summary>
    internal static List<List<CheckpointTensorInfo>> PlanShards(IReadOnlyList<CheckpointTensorInfo> tensorsInModelOrder, long maxShardBytes)
    {
        var shards = new List<List<CheckpointTensorInfo>>();
        var current = new List<CheckpointTensorInfo>();
        long currentBytes = 0;
        foreach (var group in tensorsInModelOrder.GroupBy(t => Unit(t.Name).Key))
        {
            var groupBytes = group.Sum(Bytes);
            if (current.Count > 0 && currentBytes + groupBytes > maxShardBytes)
            {
                shards.Add(current);
                current = [];
                currentBytes = 0;
            }
            current.AddRange(group);
            currentBytes += groupBytes;
        }
        if (current.Count > 0)
            shards.Add(current);
        return shards;
    }

    /// <summary>Embedding first, then the layers by number, then the final LayerNorm, then everything else (the head).</summary>
    internal static List<CheckpointTensorInfo> ModelOrder(IEnumerable<CheckpointTensorInfo> tensors) =>
        tensors.Select((t, i) => (Tensor: t, Index: i))
            .OrderBy(x => Unit(x.Tensor.Name).Rank).ThenBy(x => Unit(x.Tensor.Name).Layer).ThenBy(x => x.Index)
            .Select(x => x.Tensor).ToList();

    [GeneratedRegex(@"^transformer\.h\.(\d+)\.")]
    private static partial Regex LayerPrefix();

    // The sharding unit of a tensor (its layer, or its module elsewhere) and where that unit sits in the model.
    private static (string Key, int Rank, int Layer) Unit(string name)
    {
        var layer = LayerPrefix().Match(name);
        if (layer.Success)
            return (layer.Value, 1, int.Parse(layer.Groups[1].ValueSpan, CultureInfo.InvariantCulture));
        var module = name[..Math.Max(0, name.LastIndexOf('.'))];
        var rank = module switch
        {
            "transformer.wte" => 0,
            "transformer.ln_f" => 2,
            _ => 3,
        };
        return (module, rank, 0);
    }

    private static long Bytes(CheckpointTensorInfo info) => info.ElementCount * TensorBytes.ElementSize(info.DType);

    private static Tensor Generate(RandomCheckpoint random, CheckpointTensorInfo info)
    {
        var float32 = random.Read(info.Name);
        if (info.DType == ScalarType.Float32)
            return float32;
        using (float32)
            return float32.to(info.DType);
    }

    private static string ConfigJson(GptJConfig config, string dtypeName)
    {
        var json = JsonSerializer.SerializeToNode(config with { TorchDtype = dtypeName }, s_json)!.AsObject();
        // Only the config.json keys: GptJConfig's derived properties (HeadDim, ...) carry no JSON name and are not config.
        foreach (var derived in typeof(GptJConfig).GetProperties().Where(p => p.GetCustomAttribute<JsonPropertyNameAttribute>() is null))
            json.Remove(derived.Name);
        // What save_pretrained adds, so transformers' Auto classes pick GPT-J's model class.
        json.Insert(0, "architectures", new JsonArray("GPTJForCausalLM"));
        return json.ToJsonString(s_json) + "\n";
    }

    // {"metadata": {"total_size": N}, "weight_map": {key: file}}, keys in model order.
    private static string IndexJson(List<List<CheckpointTensorInfo>> shards, IReadOnlyList<string> shardNames, long totalBytes)
    {
        var weightMap = new JsonObject();
        for (var s = 0; s < shards.Count; s++)
        {
            foreach (var info in shards[s])
                weightMap[info.Name] = shardNames[s];
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = totalBytes },
            ["weight_map"] = weightMap,
        };
        return index.ToJsonString(s_json) + "\n";
    }

    private static void WriteSmallFile(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text));
        stream.Flush(flushToDisk: true);
    }

    private static void CheckTarget(string target, bool overwrite)
    {
        if (File.Exists(target))
            throw new IOException($"{target} is a file, not a folder.");
        if (Directory.Exists(target) && !overwrite && Directory.EnumerateFileSystemEntries(target).Any())
            throw new IOException($"{target} already exists and is not empty; refusing to overwrite it (--force replaces it).");
    }

    // Refuse early rather than fail after writing most of a 12 GB checkpoint. Headers and tokenizer files are
    // small; 64 MB covers them. A file system that cannot report its free space is not checked.
    private static void CheckFreeSpace(string folder, long tensorBytes)
    {
        long available;
        try
        {
            available = new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return;
        }
        var needed = tensorBytes + (64L << 20);
        if (available < needed)
            throw new IOException($"{folder}: not enough free disk space: the checkpoint needs {needed / 1e9:F2} GB, {available / 1e9:F2} GB is free.");
    }

    // The staging folder becomes the target in one rename. A folder being replaced is first renamed aside, so the
    // target name is never missing for longer than between two renames, and then deleted.
    private static void Publish(string staging, string target, bool overwrite)
    {
        if (Directory.Exists(target))
        {
            if (!Directory.EnumerateFileSystemEntries(target).Any())
            {
                Directory.Delete(target);
            }
            else
            {
                if (!overwrite)
                    throw new IOException($"{target} was created while the checkpoint was being written; refusing to overwrite it.");
                var aside = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.old-{Guid.NewGuid():N}");
                Directory.Move(target, aside);
                try
                {
                    Directory.Move(staging, target);
                }
                catch
                {
                    Directory.Move(aside, target);
                    throw;
                }
                Directory.Delete(aside, recursive: true);
                return;
            }
        }
        Directory.Move(staging, target);
    }

    private static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Leave it: a hidden .partial folder is harmless and the original error matters more.
        }
    }
}
