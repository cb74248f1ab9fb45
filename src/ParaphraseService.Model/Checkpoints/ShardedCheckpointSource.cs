using System.Text.Json;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// A checkpoint split into shards by Hugging Face <c>save_pretrained</c>: <c>model.safetensors.index.json</c> or
/// <c>pytorch_model.bin.index.json</c>, whose <c>weight_map</c> names the shard file of every tensor. Opening checks
/// the index and that every shard file exists; a shard is opened (its header or zip directory read and matched
/// against the index) only when one of its tensors is read, or when <see cref="Tensors"/> is first asked for.
/// </summary>
public sealed class ShardedCheckpointSource : ICheckpointSource
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, string> _shardOfTensor = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ICheckpointSource> _openShards = new(StringComparer.Ordinal);
    private readonly string _folder;
    private IReadOnlyDictionary<string, CheckpointTensorInfo>? _tensors;
    private bool _disposed;

    /// <summary>Reads and checks the index at <paramref name="indexPath"/>; opens no shard yet.</summary>
    /// <exception cref="CheckpointException">The index is missing or malformed, or names a shard file that does not exist.</exception>
    public ShardedCheckpointSource(string indexPath)
    {
        IndexPath = indexPath;
        _folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        ReadIndex();
        ShardFiles = _shardOfTensor.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        foreach (var shard in ShardFiles)
        {
            if (!File.Exists(ShardPath(shard)))
            {
                var example = _shardOfTensor.First(p => p.Value == shard).Key;
                throw new CheckpointException($"{IndexPath}: shard file '{shard}' (holding '{example}' among others) does not exist in {_folder}");
            }
        }
    }

    public string IndexPath { get; }

    /// <summary>The shard file names the index refers to, relative to its folder.</summary>
    public IReadOnlyList<string> ShardFiles { get; }

    /// <summary>Every tensor of every shard, in index order. The first use opens all shards (headers only).</summary>
    public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors
    {
        get
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_tensors is null)
                {
                    var tensors = new OrderedDictionary<string, CheckpointTensorInfo>(StringComparer.Ordinal);
                    foreach (var (name, shard) in _shardOfTensor)
                    {
                        tensors.Add(name, Shard(shard).Tensors[name]);
                    }
                    _tensors = tensors;
                }
                return _tensors;
            }
        }
    }

    public Tensor Read(string name)
    {
        ICheckpointSource shard;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_shardOfTensor.TryGetValue(name, out var shardFile))
            {
                throw new CheckpointException($"{IndexPath}: no tensor named '{name}' in the weight_map");
            }
            shard = Shard(shardFile);
        }
        // Outside the lock: reading a shard is thread-safe, so tensors of one shard can be read in parallel.
        return shard.Read(name);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var shard in _openShards.Values)
            {
                shard.Dispose();
            }
            _openShards.Clear();
        }
    }

    private void ReadIndex()
    {
        // A named pipe would block the read until something writes to it.
        if (RegularFiles.Problem(IndexPath) is { } problem)
        {
            throw new CheckpointException($"{IndexPath}: {problem}");
        }
        string text;
        try
        {
            text = File.ReadAllText(IndexPath);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException($"{IndexPath}: file not found", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{IndexPath}: cannot read: {e.Message}", e);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{IndexPath}: not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var weightMap)
                || weightMap.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{IndexPath}: not a sharded checkpoint index: no \"weight_map\" object");
            }
            foreach (var entry in weightMap.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw new CheckpointException($"{IndexPath}: weight_map entry '{entry.Name}' is not a file name");
                }
                var shard = entry.Value.GetString()!;
                CheckShardName(entry.Name, shard);
                if (!_shardOfTensor.TryAdd(entry.Name, shard))
                {
                    throw new CheckpointException($"{IndexPath}: weight_map lists '{entry.Name}' twice");
                }
            }
            if (_shardOfTensor.Count == 0)
            {
                throw new CheckpointException($"{IndexPath}: weight_map is empty");
            }
        }
    }

    // Shards live next to their index; a name that climbs out of the folder is refused rather than followed.
    private void CheckShardName(string tensor, string shard)
    {
        var segments = shard.Split('/', '\\');
        if (shard.Length == 0 || System.IO.Path.IsPathRooted(shard) || segments.Any(s => s is "" or "." or ".."))
        {
            throw new CheckpointException($"{IndexPath}: weight_map entry '{tensor}' names shard '{shard}', which is not a file in the index's folder");
        }
    }

    private string ShardPath(string shard) => System.IO.Path.Combine(_folder, shard);

    /// <summary>The open shard, opening and matching it against the index on first use. Called under the lock.</summary>
    private ICheckpointSource Shard(string shard)
    {
        if (_openShards.TryGetValue(shard, out var open))
        {
            return open;
        }
        var path = ShardPath(shard);
        ICheckpointSource source = shard.EndsWith(".safetensors", StringComparison.Ordinal)
            ? new SafetensorsReader(path)
            : new PyTorchCheckpointReader(path);
        try
        {
            foreach (var name in source.Tensors.Keys)
            {
                if (!_shardOfTensor.TryGetValue(name, out var listed))
                {
                    throw new CheckpointException($"{path}: shard holds tensor '{name}', which the index {IndexPath} does not list");
                }
                if (listed != shard)
                {
                    throw new CheckpointException($"{path}: shard holds tensor '{name}', which the index {IndexPath} assigns to shard '{listed}'");
                }
            }
            foreach (var (name, listed) in _shardOfTensor)
            {
                if (listed == shard && !source.Tensors.ContainsKey(name))
                {
                    throw new CheckpointException($"{path}: shard lacks tensor '{name}', which the index {IndexPath} assigns to it");
                }
            }
        }
        catch
        {
            source.Dispose();
            throw;
        }
        _openShards.Add(shard, source);
        return source;
    }
}
