using System.Text.Json.Nodes;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Layers;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Writes an int8 copy of a model folder: every Linear weight and the token embedding become int8 values
/// (<c>name</c>) with fp32 row scales (<c>name_scale</c>); LayerNorms and biases keep their stored dtype. The output
/// is an ordinary Hugging Face folder (config.json with a <c>quantization_config</c>, model.safetensors, the tokenizer
/// files) that loads without quantizing again. Tensors are written under the model's own names and int8 weights in the
/// model's [out, in] layout (a GPT-2 file's Conv1D weights, [in, out], are transposed before quantizing per row).
/// </summary>
public static class QuantizedCheckpoint
{
    public const string Method = "paraphrase-int8-rowwise";

    /// <param name="progress">Called with (tensors written, tensors in all).</param>
    public static void Write(string sourceFolder, string outputFolder, Action<int, int>? progress = null)
    {
        var configPath = Path.Combine(sourceFolder, "config.json");
        var (family, config) = ModelFamilies.LoadConfig(configPath);
        using var files = CheckpointFiles.Open(sourceFolder);
        using var source = new CheckpointView(files, family.Checkpoint);
        if (source.Tensors.Keys.Any(k => k.EndsWith(StateDictLoader.ScaleSuffix, StringComparison.Ordinal)))
            throw new CheckpointException($"{sourceFolder} is already int8-quantized.");
        // The comparison loading makes: a missing, wrong-shaped or integer tensor was written out as a broken checkpoint
        // (exit 0), and a scalar weight failed midway with "Index was outside the bounds of the array".
        StateDictLoader.CheckBeforeBuilding(config, source, new LayerFactory(ScalarType.Float32, device("meta")), sourceFolder);
        var tokenizerFiles = CheckpointFiles.FilesToCopy(sourceFolder, CheckpointFiles.TokenizerFiles); // refused before the work, not after

        var quantizedKeys = QuantizedWeightKeys(config);
        var infos = new List<CheckpointTensorInfo>();
        foreach (var info in source.Tensors.Values.Where(i => !StateDictLoader.IsIgnored(i.Name)))
        {
            if (quantizedKeys.Contains(info.Name))
            {
                infos.Add(info with { DType = ScalarType.Int8 });
                infos.Add(new CheckpointTensorInfo(info.Name + StateDictLoader.ScaleSuffix, ScalarType.Float32, [info.Shape[0]]));
            }
            else
            {
                infos.Add(info);
            }
        }

        AtomicFiles.PublishFolder(outputFolder, staging =>
        {
            var written = 0;
            SafetensorsWriter.Write(Path.Combine(staging, "model.safetensors"), infos, info =>
            {
                progress?.Invoke(++written, infos.Count);
                return Produce(info, source, quantizedKeys);
            }, new Dictionary<string, string> { ["format"] = "pt", ["quantization"] = Method });

            var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
            json["quantization_config"] = new JsonObject
            {
                ["quant_method"] = Method,
                ["bits"] = 8,
                ["scheme"] = "symmetric, one fp32 scale per output row",
                ["scale_suffix"] = StateDictLoader.ScaleSuffix,
            };
            File.WriteAllText(Path.Combine(staging, "config.json"), json.ToJsonString(new() { WriteIndented = true }));
            foreach (var file in tokenizerFiles)
                File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
        });
    }

    /// <summary>Keys whose tensors are stored in 8 bits: the weights of the layers the int8 model builds quantized.</summary>
    public static IReadOnlySet<string> QuantizedWeightKeys(ICausalLMConfig config)
    {
        using var meta = ModelFamilies.Create(config, new LayerFactory(ScalarType.Float32, device("meta"), Quantization.Int8));
        return meta.named_modules().Where(m => m.module is IQuantizedWeightLayer).Select(m => m.name + ".weight").ToHashSet();
    }

    // The writer asks for each tensor once, scales before int8 values (larger elements first). A weight is quantized
    // for each of its two tensors instead of holding one until the other is asked for: the same deterministic
    // computation twice costs time, holding values would cost memory that grows with the model.
    private static Tensor Produce(CheckpointTensorInfo info, ICheckpointSource source, IReadOnlySet<string> quantizedKeys)
    {
        if (info.Name.EndsWith(StateDictLoader.ScaleSuffix, StringComparison.Ordinal) && quantizedKeys.Contains(info.Name[..^StateDictLoader.ScaleSuffix.Length]))
        {
            using var weight = source.Read(info.Name[..^StateDictLoader.ScaleSuffix.Length]);
            var (q, scale) = RowwiseInt8.Quantize(weight, CPU);
            q.Dispose();
            return scale;
        }
        if (quantizedKeys.Contains(info.Name))
        {
            using var weight = source.Read(info.Name);
            var (q, scale) = RowwiseInt8.Quantize(weight, CPU);
            scale.Dispose();
            return q;
        }
        return source.Read(info.Name);
    }
}
