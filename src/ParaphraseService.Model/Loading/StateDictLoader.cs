using System.Reflection;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Fills a model built on the meta device (shapes only) from a checkpoint, one tensor at a time: each tensor is read,
/// converted to the model dtype on the target device and put in place of its meta parameter, so the checkpoint and
/// the model never both exist in full.
/// </summary>
public static partial class StateDictLoader
{
    // Old GPT-J checkpoints carry the causal mask as buffers; the model builds its own.
    [GeneratedRegex(@"^transformer\.h\.\d+\.attn\.(bias|masked_bias)$")]
    private static partial Regex IgnoredKey();

    private const int ListedKeys = 8;

    public static void Load(nn.Module model, ICheckpointSource source, ScalarType dtype, Device device, string sourceName)
    {
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Check(expected, source.Tensors, sourceName);

        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        using var noGrad = torch.no_grad();
        foreach (var (name, _) in expected)
        {
            using var stored = source.Read(name);
            var value = stored.to(dtype, device).DetachFromDisposeScope();
            var split = name.LastIndexOf('.');
            SetParameter(modules[name[..split]], name[(split + 1)..], new TorchSharp.Modules.Parameter(value, requires_grad: false), name);
        }
    }

    /// <summary>Missing, unexpected and wrong-shaped tensors, all reported in one message.</summary>
    internal static void Check(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, CheckpointTensorInfo> actual, string sourceName)
    {
        var missing = expected.Keys.Where(k => !actual.ContainsKey(k)).Order().ToList();
        var unexpected = actual.Keys.Where(k => !expected.ContainsKey(k) && !IgnoredKey().IsMatch(k)).Order().ToList();
        var wrongShape = expected
            .Where(e => actual.TryGetValue(e.Key, out var info) && !info.Shape.SequenceEqual(e.Value))
            .Select(e => $"{e.Key} is [{string.Join(", ", actual[e.Key].Shape)}] but the model expects [{string.Join(", ", e.Value)}]")
            .Order().ToList();
        var notFloat = expected.Keys
            .Where(k => actual.TryGetValue(k, out var info) && !torch.is_floating_point(info.DType))
            .Select(k => $"{k} ({actual[k].DType})").Order().ToList();

        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing {missing.Count} tensor(s): {List(missing)}");
        if (unexpected.Count > 0) problems.Add($"unexpected {unexpected.Count} tensor(s): {List(unexpected)}");
        if (wrongShape.Count > 0) problems.Add($"wrong shape: {List(wrongShape)}");
        if (notFloat.Count > 0) problems.Add($"not floating point: {List(notFloat)}");
        if (problems.Count > 0)
            throw new CheckpointException($"{sourceName} does not match the model: {string.Join("; ", problems)}.");
    }

    private static string List(List<string> items) =>
        items.Count <= ListedKeys ? string.Join(", ", items) : string.Join(", ", items.Take(ListedKeys)) + $" and {items.Count - ListedKeys} more";

    // Layers keep their parameters in fields behind settable properties (Linear.weight, LayerNorm.bias, ...): setting
    // the property swaps the meta tensor for the loaded one and re-registers it.
    private static void SetParameter(nn.Module owner, string leaf, TorchSharp.Modules.Parameter value, string fullName)
    {
        var property = owner.GetType().GetProperty(leaf, BindingFlags.Public | BindingFlags.Instance);
        if (property is null || !property.CanWrite || !property.PropertyType.IsAssignableFrom(typeof(TorchSharp.Modules.Parameter)))
            throw new InvalidOperationException($"Cannot load {fullName}: {owner.GetType().Name} has no settable '{leaf}' parameter.");
        property.SetValue(owner, value);
    }
}
