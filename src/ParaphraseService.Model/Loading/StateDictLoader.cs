using System.Reflection;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.Layers;
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
    // Old checkpoints carry the causal mask as buffers; the model builds its own. GPT-J and GPT-2 keep them in
    // h.N.attn (GPT-2 files may lack the "transformer." prefix), GPT-Neo in h.N.attn.attention.
    [GeneratedRegex(@"^(transformer\.)?h\.\d+\.attn\.(attention\.)?(bias|masked_bias)$")]
    private static partial Regex IgnoredKey();

    private const int ListedKeys = 8;

    /// <summary>Checkpoint tensors the model does not read (old causal-mask buffers).</summary>
    public static bool IsIgnored(string key) => IgnoredKey().IsMatch(key);

    /// <summary>Suffix of the fp32 row scales that sit beside an int8 weight in a quantized checkpoint.</summary>
    public const string ScaleSuffix = "_scale";

    public static void Load(nn.Module model, ICheckpointSource source, ScalarType dtype, Device device, string sourceName)
    {
        // Layers wrapped for LoRA hold the original under "base_layer"; the checkpoint knows them by their own path.
        var quantized = model.named_modules()
            .Where(m => m.module is IQuantizedWeightLayer)
            .ToDictionary(m => CheckpointKey(m.name) + ".weight", m => (IQuantizedWeightLayer)m.module);
        var parameters = model.named_parameters().ToDictionary(p => CheckpointKey(p.name), p => p.name);
        var withoutScales = quantized.Keys
            .Where(k => source.Tensors.TryGetValue(k, out var info) && info.DType == ScalarType.Int8 && !source.Tensors.ContainsKey(k + ScaleSuffix))
            .Order().ToList();
        if (withoutScales.Count > 0)
            throw new CheckpointException($"{sourceName} has int8 weights without their row scales (<name>{ScaleSuffix}): {List(withoutScales)}.");
        var expected = model.named_parameters().ToDictionary(p => CheckpointKey(p.name), p => new ExpectedTensor(p.parameter.shape));
        foreach (var (key, layer) in quantized)
        {
            // A quantized checkpoint stores the int8 weight with its scales; a full-precision one only the weight.
            var preQuantized = source.Tensors.ContainsKey(key + ScaleSuffix);
            expected[key] = new ExpectedTensor(layer.WeightShape, preQuantized ? ScalarType.Int8 : null);
            if (preQuantized)
                expected[key + ScaleSuffix] = new ExpectedTensor([layer.WeightShape[0]], ScalarType.Float32);
        }
        Check(expected, source.Tensors, sourceName);

        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        using var noGrad = torch.no_grad();
        foreach (var (key, layer) in quantized)
        {
            using var stored = source.Read(key);
            if (expected[key].DType == ScalarType.Int8)
            {
                using var scale = source.Read(key + ScaleSuffix);
                layer.LoadQuantizedWeight(stored, scale, device);
            }
            else
            {
                layer.LoadWeight(stored, device);
            }
            ProcessMemory.ReleaseFreedMemory();
        }
        foreach (var (key, name) in parameters)
        {
            using var stored = source.Read(key);
            var value = stored.to(dtype, device).DetachFromDisposeScope();
            var split = name.LastIndexOf('.');
            SetParameter(modules[name[..split]], name[(split + 1)..], new TorchSharp.Modules.Parameter(value, requires_grad: false), key);
        }
    }

    /// <summary>The checkpoint's name for a parameter or module path of the model (LoRA wrappers removed).</summary>
    public static string CheckpointKey(string name) => name.Replace(".base_layer", "", StringComparison.Ordinal);

    /// <summary>A tensor the model reads: its shape, and its dtype when it must be exactly one (else any floating point).</summary>
    internal sealed record ExpectedTensor(long[] Shape, ScalarType? DType = null);

    /// <summary>Missing, unexpected, wrong-shaped and wrong-typed tensors, all reported in one message.</summary>
    internal static void Check(IReadOnlyDictionary<string, ExpectedTensor> expected, IReadOnlyDictionary<string, CheckpointTensorInfo> actual, string sourceName)
    {
        var missing = expected.Keys.Where(k => !actual.ContainsKey(k)).Order().ToList();
        var unexpected = actual.Keys.Where(k => !expected.ContainsKey(k) && !IgnoredKey().IsMatch(k)).Order().ToList();
        var present = expected.Where(e => actual.ContainsKey(e.Key)).Select(e => (Name: e.Key, Want: e.Value, Got: actual[e.Key])).ToList();
        var wrongShape = present.Where(t => !t.Got.Shape.SequenceEqual(t.Want.Shape))
            .Select(t => $"{t.Name} is [{string.Join(", ", t.Got.Shape)}] but the model expects [{string.Join(", ", t.Want.Shape)}]")
            .Order().ToList();
        var wrongType = present.Where(t => t.Want.DType is { } want ? t.Got.DType != want : !torch.is_floating_point(t.Got.DType))
            .Select(t => $"{t.Name} ({t.Got.DType}{(t.Want.DType is { } want ? $", expected {want}" : "")})").Order().ToList();

        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing {missing.Count} tensor(s): {List(missing)}");
        if (unexpected.Count > 0) problems.Add($"unexpected {unexpected.Count} tensor(s): {List(unexpected)}");
        if (wrongShape.Count > 0) problems.Add($"wrong shape: {List(wrongShape)}");
        if (wrongType.Count > 0) problems.Add($"wrong dtype (floating point expected unless named): {List(wrongType)}");
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
