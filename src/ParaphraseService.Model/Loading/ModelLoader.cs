using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>Builds GPT-J from a Hugging Face model folder (config.json, weights, tokenizer files).</summary>
public static class ModelLoader
{
    /// <param name="sourceName">How to name the model in logs and responses; the folder by default.</param>
    public static LoadedModel LoadFolder(string folder, ModelLoadOptions options, string? sourceName = null)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        var (device, dtype) = options.Resolve();
        var config = GptJConfig.Load(Path.Combine(folder, "config.json"));
        using var checkpoint = CheckpointFiles.Open(folder);
        var model = Build(config, checkpoint, dtype, device, folder);
        return new LoadedModel(model, Gpt2Tokenizer.FromFolder(folder), sourceName ?? folder, isDemo: false, device, dtype);
    }

    /// <summary>Shapes first on the meta device, then each weight streamed in from the checkpoint.</summary>
    internal static GptJForCausalLM Build(GptJConfig config, ICheckpointSource checkpoint, ScalarType dtype, Device device, string sourceName)
    {
        var model = new GptJForCausalLM(config, dtype, torch.device("meta"));
        try
        {
            StateDictLoader.Load(model, checkpoint, dtype, device, sourceName);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
