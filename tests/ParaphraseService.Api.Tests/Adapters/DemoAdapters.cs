using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>PEFT adapters for the built-in demo model, written by the model code itself (no fixture files to keep in step).</summary>
internal static class DemoAdapters
{
    /// <summary>
    /// Writes a rank-4 adapter on q_proj and v_proj, its B non-zero so it changes the output, into
    /// <paramref name="folder"/> (PEFT's files, no metadata: it is served with the fine-tune prompt). Returns the folder.
    /// </summary>
    public static string Write(string folder, string name, long seed = 7)
    {
        using var model = DemoModel.Load(new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var registry = model.Adapters!;
        var targets = registry.Targets.Where(t => t.Key.EndsWith("q_proj", StringComparison.Ordinal) || t.Key.EndsWith("v_proj", StringComparison.Ordinal))
            .ToDictionary(t => t.Key, t => t.Value);
        using var adapter = LoraAdapter.CreateNew(name, rank: 4, alpha: 8, useRsLora: false, dropout: 0, targets, CPU, seed: seed);
        using (no_grad())
            foreach (var (_, (_, b)) in adapter.Matrices)
                b.normal_(0, 0.02, generator: new Generator((ulong)seed, CPU));
        var config = new PeftLoraConfig { R = 4, LoraAlpha = 8, TargetModules = PeftTargetModules.FromNames(["q_proj", "v_proj"]) };
        var modules = adapter.Matrices.ToDictionary(m => m.Key, m => new LoraWeights(m.Value.A, m.Value.B));
        using var peft = PeftAdapter.Create(name, config, modules, registry.Target, metadata: null);
        PeftAdapterFiles.Save(folder, peft);
        return folder;
    }
}
