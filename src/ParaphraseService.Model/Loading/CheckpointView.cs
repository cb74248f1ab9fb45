using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// A checkpoint seen through a family's <see cref="CheckpointConventions"/>: keys carry the model's names, Conv1D
/// weights read as [out, in] (transposed as they are read, one tensor at a time), mask buffers and a tied head's copy
/// are left out. An int8 weight (one with a <c>_scale</c> beside it) is written by this project, always [out, in],
/// and is never transposed.
/// </summary>
public sealed class CheckpointView : ICheckpointSource
{
    private readonly ICheckpointSource _files;
    private readonly CheckpointConventions _conventions;
    private readonly Dictionary<string, string> _fileKeys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _modelKeys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _transposed = new(StringComparer.Ordinal);

    /// <summary>The files seen with the model's names and shapes; the view owns nothing and does not dispose <paramref name="files"/>.</summary>
    public CheckpointView(ICheckpointSource files, CheckpointConventions conventions)
    {
        _files = files;
        _conventions = conventions;
        var prefix = conventions.OptionalPrefix;
        // Either every trunk key has the prefix or none has: a file without any prefixed key is a bare trunk's.
        var bare = prefix is not null && !files.Tensors.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var tensors = new Dictionary<string, CheckpointTensorInfo>(StringComparer.Ordinal);
        foreach (var (fileKey, info) in files.Tensors)
        {
            var key = bare && !fileKey.StartsWith("lm_head.", StringComparison.Ordinal) ? prefix + fileKey : fileKey;
            if (StateDictLoader.IsIgnored(key) || key == conventions.TiedHeadKey)
                continue;
            var shape = info.Shape;
            if (conventions.IsTransposed?.Invoke(key) == true && shape.Length == 2
                && !files.Tensors.ContainsKey(fileKey + StateDictLoader.ScaleSuffix))
            {
                _transposed.Add(key);
                shape = [shape[1], shape[0]];
            }
            _fileKeys[key] = fileKey;
            _modelKeys[fileKey] = key;
            tensors[key] = info with { Name = key, Shape = shape };
        }
        Tensors = tensors;
    }

    public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors { get; }

    /// <summary>The key a model tensor has in the files.</summary>
    public string FileKey(string key) => _fileKeys.TryGetValue(key, out var fileKey) ? fileKey : key;

    /// <summary>The model key of a file's tensor, or null for one the model does not read (mask buffers, a tied head's copy).</summary>
    public string? ModelKey(string fileKey) => _modelKeys.GetValueOrDefault(fileKey);

    /// <summary>Whether the files store this model tensor transposed (a Conv1D weight, [in, out]).</summary>
    public bool IsTransposed(string key) => _transposed.Contains(key);

    public TorchSharp.torch.Tensor Read(string name)
    {
        var stored = _files.Read(FileKey(name));
        if (!_transposed.Contains(name))
            return stored;
        using (stored)
            // Conv1D keeps weight [nx, nf] = [in, out] and computes x @ weight; a Linear keeps [out, in].
            return stored.t().contiguous();
    }

    public void Dispose()
    {
    }
}
