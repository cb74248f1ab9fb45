using System.Text.Json.Nodes;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Bakes a LoRA adapter into a full-precision copy of the base weights (W' = W + scaling · B · A, each module with its
/// own rank and scaling; modules the adapter leaves out are copied unchanged) and writes the
/// result as an ordinary Hugging Face model folder, for users who want one fixed model to run elsewhere. The files keep
/// the base's own layout: a GPT-2 Conv1D weight, stored [in, out], gets the transposed delta (PEFT's fan_in_fan_out).
/// </summary>
public static class AdapterMerge
{
    private static readonly string[] CopiedFiles = ["config.json", .. CheckpointFiles.TokenizerFiles];

    /// <param name="baseFolder">The base model in full precision (an int8 folder has lost the precision to merge into).</param>
    public static void Export(string baseFolder, LoraAdapter adapter, string outputFolder)
    {
        var (family, _) = ModelFamilies.LoadConfig(Path.Combine(baseFolder, "config.json"));
        using var source = CheckpointFiles.Open(baseFolder);
        using var view = new CheckpointView(source, family.Checkpoint);
        if (source.Tensors.Keys.Any(k => k.EndsWith(StateDictLoader.ScaleSuffix, StringComparison.Ordinal)))
            throw new CheckpointException($"{baseFolder} is int8-quantized; merge into the full-precision base model instead.");
        var missing = adapter.Modules.Where(m => !view.Tensors.ContainsKey(m + ".weight")).ToList();
        if (missing.Count > 0)
            throw new CheckpointException($"{baseFolder} has no weights for the adapter's modules: {string.Join(", ", missing.Take(5))}.");
        var copied = CheckpointFiles.FilesToCopy(baseFolder, CopiedFiles); // refused before the work, not after

        AtomicFiles.PublishFolder(outputFolder, staging =>
        {
            var infos = source.Tensors.Values.Where(i => !StateDictLoader.IsIgnored(i.Name)).ToList();
            SafetensorsWriter.Write(Path.Combine(staging, "model.safetensors"), infos,
                info => Merged(source, view, info, adapter), new Dictionary<string, string> { ["format"] = "pt", ["merged_adapter"] = adapter.Name });
            foreach (var file in copied)
                File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
            NoteTheMerge(Path.Combine(staging, "config.json"), adapter);
        });
    }

    private static Tensor Merged(ICheckpointSource source, CheckpointView view, CheckpointTensorInfo info, LoraAdapter adapter)
    {
        var stored = source.Read(info.Name);
        var key = view.ModelKey(info.Name);
        if (key is null || !key.EndsWith(".weight", StringComparison.Ordinal) || !adapter.Weights.TryGetValue(key[..^".weight".Length], out var lora))
            return stored;
        using (stored)
        using (var scope = NewDisposeScope())
        {
            // delta_weight = transpose(weight_B @ weight_A, self.fan_in_fan_out) * self.scaling
            var delta = lora.B.cpu().matmul(lora.A.cpu()) * lora.Scaling;
            if (view.IsTransposed(key))
                delta = delta.t();
            // W' = W + delta, computed in fp32 and stored back in the checkpoint's dtype
            var merged = stored.to(ScalarType.Float32) + delta;
            return merged.to(info.DType).MoveToOuterDisposeScope();
        }
    }

    private static void NoteTheMerge(string configPath, LoraAdapter adapter)
    {
        if (!File.Exists(configPath))
            return;
        var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        var note = new JsonObject { ["name"] = adapter.Name, ["rank"] = adapter.Rank, ["scaling"] = adapter.Scaling };
        if (adapter.HasModuleSettings)
        {
            // rank_pattern / alpha_pattern: the defaults above are not every module's.
            note["modules"] = new JsonObject(adapter.Weights.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m =>
                KeyValuePair.Create<string, JsonNode?>(m.Key, new JsonObject { ["rank"] = m.Value.A.shape[0], ["scaling"] = m.Value.Scaling })));
        }
        json["merged_lora_adapter"] = note;
        File.WriteAllText(configPath, json.ToJsonString(new() { WriteIndented = true }));
    }
}
