using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptNeo;
using ParaphraseService.Model.Loading;
using static TorchSharp.torch;

namespace ParaphraseService.Api.Tests;

/// <summary>
/// Tiny GPT-Neo and GPT-2 model folders with random weights, written once per test run in the layout of the hub's
/// files (GPT-2: no "transformer." prefix, Conv1D weights [in, out]), for <c>Model:Source</c>. GPT-2's vocabulary, so
/// the service's tokenizer fits, and a context long enough for the few-shot paraphrase prompt (but for
/// <see cref="SixteenTokens"/>, whose vocabulary is GPT-2's first 16 tokens). The folders are deterministic
/// and kept in one temp folder across runs (written to a staging folder and renamed, so a half-written one is never used).
/// </summary>
internal static class TinyFamilyModels
{
    // Bump when the configs or the layout below change.
    private static readonly string s_root = Path.Combine(Path.GetTempPath(), "paraphrase-family-models-v1");

    private static readonly Dictionary<string, Lazy<string>> s_folders = new()
    {
        ["gpt_neo"] = new(() => Write(new GptNeoConfig
        {
            VocabSize = 50257, MaxPositions = 1024, HiddenSize = 32, LayerCount = 2, HeadCount = 4, WindowSize = 16,
            AttentionTypes = [new(["global", "local"], 1)],
        })),
        ["gpt2"] = new(() => Write(new Gpt2Config { VocabSize = 50257, MaxPositions = 1024, HiddenSize = 32, LayerCount = 2, HeadCount = 4 })),
        // GPT-2's first 16 ids, the byte tokens of !"#$%&'()*+,-./0 (the rest of the tokenizer has no logit): few enough
        // that a request's 16 avoided terms can ban every one.
        [SixteenTokens] = new(() => Write(new Gpt2Config { VocabSize = 16, MaxPositions = 64, HiddenSize = 16, LayerCount = 1, HeadCount = 2 },
            SixteenTokens)),
    };

    public const string SixteenTokens = "gpt2-16-tokens";

    /// <summary>The folder of the tiny model of a model_type ("gpt_neo", "gpt2"), or of <see cref="SixteenTokens"/>.</summary>
    public static string Folder(string modelType)
    {
        lock (s_folders)
            return s_folders[modelType].Value;
    }

    private static string Write(ICausalLMConfig config, string? name = null)
    {
        name ??= config.ModelType;
        var target = Path.Combine(s_root, name);
        if (Directory.Exists(target))
            return target;
        var folder = Path.Combine(s_root, $".{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config, config.GetType()));
        using var weights = new RandomCheckpoint(config, seed: 11);
        var gpt2 = config is Gpt2Config;
        // GPT-2 on the hub: a bare GPT2Model state dict whose Conv1D weights are [in, out].
        string FileKey(string key) => gpt2 ? key["transformer.".Length..] : key;
        var infos = weights.Tensors.Values
            .Select(t => t with { Name = FileKey(t.Name), Shape = gpt2 && Gpt2ForCausalLM.IsConv1DWeight(t.Name) ? [t.Shape[1], t.Shape[0]] : t.Shape })
            .ToList();
        var modelKeys = weights.Tensors.Keys.ToDictionary(FileKey);
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), infos, info =>
        {
            var key = modelKeys[info.Name];
            var tensor = weights.Read(key);
            if (!gpt2 || !Gpt2ForCausalLM.IsConv1DWeight(key))
                return tensor;
            using (tensor)
                return tensor.t().contiguous();
        }, new Dictionary<string, string> { ["format"] = "pt" });
        try
        {
            Directory.Move(folder, target);
        }
        catch (IOException) when (Directory.Exists(target))
        {
            Directory.Delete(folder, recursive: true); // another run finished first
        }
        return target;
    }
}
