using System.Reflection;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.Families;
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

    // Every family keeps its layers in a ModuleList named h: transformer.h.0.ln_1.weight is (transformer.h.)0(.ln_1.weight).
    [GeneratedRegex(@"^((?:.+\.)?h\.)0(\..+)$")]
    private static partial Regex FirstLayerKey();

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
        var expected = Expected(ModelTensors(model), source, sourceName);
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

    /// <summary>
    /// Compares a checkpoint with the model of <paramref name="config"/> before that model is built, so a mismatch costs
    /// nothing of the model's size (200000 layers took 125 s and 7.4 GB to build before their tensors were compared). A
    /// one-layer model on the meta device names and shapes the tensors outside the layers and those of one layer, which
    /// every layer repeats.
    /// </summary>
    /// <param name="source">Tensors named and shaped as the model holds them (see <see cref="CheckpointView"/>).</param>
    /// <exception cref="CheckpointException">The same report as <see cref="Load"/>'s, led by a layer count that differs.</exception>
    public static void CheckBeforeBuilding(ICausalLMConfig config, ICheckpointSource source, LayerFactory layers, string sourceName)
    {
        Dictionary<string, ModelTensor> oneLayer;
        using (var template = ModelFamilies.Create(config.WithLayerCount(1), layers with { Device = torch.device("meta") }))
            oneLayer = ModelTensors(template);
        var prefix = oneLayer.Keys.Select(k => FirstLayerKey().Match(k)).FirstOrDefault(m => m.Success)?.Groups[1].Value;
        var stored = prefix is null ? 0 : source.Tensors.Keys.Select(k => LayerIndex(k, prefix) + 1).DefaultIfEmpty(0).Max();
        var problems = new List<string>();
        if (stored != config.LayerCount)
        {
            var held = stored == 0 ? "none" : $"{stored} ({prefix}0 to {prefix}{stored - 1})";
            problems.Add($"config.json declares {config.LayerCount} layer(s) but the checkpoint has {held}");
        }
        // Layers past the checkpoint's last are missing whole: the first stands for them rather than thousands of names.
        var compared = Math.Min(config.LayerCount, stored + 1);
        var model = new Dictionary<string, ModelTensor>(StringComparer.Ordinal);
        foreach (var (key, tensor) in oneLayer)
        {
            var match = FirstLayerKey().Match(key);
            if (!match.Success)
                model[key] = tensor;
            for (var i = 0; match.Success && i < compared; i++)
                model[$"{match.Groups[1].Value}{i}{match.Groups[2].Value}"] = tensor;
        }
        Check(Expected(model, source, sourceName), source.Tensors, sourceName, problems);
    }

    /// <summary>The layer a key of <paramref name="prefix"/> (<c>transformer.h.</c>) belongs to, or -1.</summary>
    private static int LayerIndex(string key, string prefix)
    {
        if (!key.StartsWith(prefix, StringComparison.Ordinal))
            return -1;
        var rest = key.AsSpan(prefix.Length);
        var dot = rest.IndexOf('.');
        // Beyond int (h.99999999999999999999) it is no layer of ours: the comparison lists it as unexpected.
        return dot > 0 && int.TryParse(rest[..dot], System.Globalization.NumberStyles.None, null, out var index) && index < int.MaxValue ? index : -1;
    }

    /// <summary>A tensor of the model: its shape, and whether it is the weight of a layer that may be stored in 8 bits.</summary>
    private sealed record ModelTensor(long[] Shape, bool Quantizable);

    private static Dictionary<string, ModelTensor> ModelTensors(nn.Module model)
    {
        var tensors = model.named_parameters().ToDictionary(p => CheckpointKey(p.name), p => new ModelTensor(p.parameter.shape, false));
        foreach (var (name, module) in model.named_modules())
        {
            if (module is IQuantizedWeightLayer layer)
                tensors[CheckpointKey(name) + ".weight"] = new ModelTensor(layer.WeightShape, true);
        }
        return tensors;
    }

    /// <summary>What the model reads from <paramref name="source"/>: an int8 weight comes with its scales, a full-precision one alone.</summary>
    private static Dictionary<string, ExpectedTensor> Expected(IReadOnlyDictionary<string, ModelTensor> model, ICheckpointSource source, string sourceName)
    {
        var withoutScales = model.Where(t => t.Value.Quantizable).Select(t => t.Key)
            .Where(k => source.Tensors.TryGetValue(k, out var info) && info.DType == ScalarType.Int8 && !source.Tensors.ContainsKey(k + ScaleSuffix))
            .Order().ToList();
        if (withoutScales.Count > 0)
            throw new CheckpointException($"{sourceName} has int8 weights without their row scales (<name>{ScaleSuffix}): {List(withoutScales)}.");
        var expected = new Dictionary<string, ExpectedTensor>(StringComparer.Ordinal);
        foreach (var (key, tensor) in model)
        {
            var preQuantized = tensor.Quantizable && source.Tensors.ContainsKey(key + ScaleSuffix);
            expected[key] = new ExpectedTensor(tensor.Shape, preQuantized ? ScalarType.Int8 : null);
            if (preQuantized)
                expected[key + ScaleSuffix] = new ExpectedTensor([tensor.Shape[0]], ScalarType.Float32);
        }
        return expected;
    }

    /// <summary>The checkpoint's name for a parameter or module path of the model (LoRA wrappers removed).</summary>
    public static string CheckpointKey(string name) => name.Replace(".base_layer", "", StringComparison.Ordinal);

    /// <summary>A tensor the model reads: its shape, and its dtype when it must be exactly one (else any floating point).</summary>
    internal sealed record ExpectedTensor(long[] Shape, ScalarType? DType = null);

    /// <summary>Missing, unexpected, wrong-shaped and wrong-typed tensors, all reported in one message.</summary>
    /// <param name="problems">Problems found before, reported first.</param>
    internal static void Check(IReadOnlyDictionary<string, ExpectedTensor> expected, IReadOnlyDictionary<string, CheckpointTensorInfo> actual, string sourceName,
        List<string>? problems = null)
    {
        var missing = expected.Keys.Where(k => !actual.ContainsKey(k)).Order().ToList();
        var unexpected = actual.Keys.Where(k => !expected.ContainsKey(k) && !IgnoredKey().IsMatch(k)).Order().ToList();
        var present = expected.Where(e => actual.ContainsKey(e.Key)).Select(e => (Name: e.Key, Want: e.Value, Got: actual[e.Key])).ToList();
        var wrongShape = present.Where(t => !t.Got.Shape.SequenceEqual(t.Want.Shape))
            .Select(t => $"{t.Name} is [{string.Join(", ", t.Got.Shape)}] but the model expects [{string.Join(", ", t.Want.Shape)}]")
            .Order().ToList();
        var wrongType = present.Where(t => t.Want.DType is { } want ? t.Got.DType != want : !torch.is_floating_point(t.Got.DType))
            .Select(t => $"{t.Name} ({t.Got.DType}{(t.Want.DType is { } want ? $", expected {want}" : "")})").Order().ToList();

        problems ??= [];
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
