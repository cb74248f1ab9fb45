using ParaphraseService.Model.GptJ;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// The built-in demo model (<c>demo</c>): a small GPT-J (3.7M parameters, a 1024-id byte-level BPE vocabulary) trained
/// here as a plain language model on the sentences of PAWS-Wiki's dev file (tests/fixtures/make_demo_model.py), and its
/// paraphrase adapter, trained by <c>paraphrase train</c> on the PAWS pairs. Both ship as files beside this assembly
/// (copied on build and publish from src/ParaphraseService.Model/Demo), so everything works offline, and a
/// <c>/paraphrase</c> with the adapter returns rough but real rewrites. It is a test and demo model, not a useful LLM.
/// <see cref="RandomDemoModel"/> keeps the earlier random-weight model for tests that need one.
/// </summary>
public static class DemoModel
{
    public const string SourceName = "demo";

    /// <summary>The paraphrase adapter that ships with the demo model (<see cref="LoadedModel.BundledAdapter"/>).</summary>
    public const string AdapterName = "paws-demo";

    public const string Notice =
        "demo model: a 3.7M-parameter GPT-J trained on 6k English sentences; with its adapter paws-demo its paraphrases are rough, without it its text is not useful";

    /// <summary>The folder the demo files were copied to: <c>demo/</c> beside this assembly.</summary>
    public static string Root => Path.Combine(Path.GetDirectoryName(typeof(DemoModel).Assembly.Location) is { Length: > 0 } dir ? dir : AppContext.BaseDirectory, "demo");

    /// <summary>The trained base model, a Hugging Face folder (config.json, model.safetensors, vocab.json, merges.txt).</summary>
    public static string Folder => Path.Combine(Root, "model");

    /// <summary>The paraphrase adapter's PEFT folder.</summary>
    public static string AdapterFolder => Path.Combine(Root, "adapters", AdapterName);

    /// <summary>
    /// The shape of the random-weight model (<see cref="RandomDemoModel.Config"/>), which tests use to build tiny random
    /// GPT-Js with GPT-2's vocabulary; the trained demo's own config is its folder's config.json.
    /// </summary>
    public static GptJConfig Config => RandomDemoModel.Config;

    /// <summary>
    /// The trained demo, with its adapter as <see cref="LoadedModel.BundledAdapter"/> (null only while the adapter
    /// folder does not exist: when it is being trained, by <c>paraphrase train --model demo</c>).
    /// </summary>
    /// <exception cref="FileNotFoundException">The demo files are missing beside the assembly (a broken build or publish).</exception>
    public static LoadedModel Load(ModelLoadOptions options)
    {
        foreach (var file in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt" }.Select(f => Path.Combine(Folder, f)))
        {
            if (!File.Exists(file))
                throw new FileNotFoundException(
                    $"The demo model's file {file} is missing: the demo files are copied beside ParaphraseService.Model.dll on build and publish (from src/ParaphraseService.Model/Demo).",
                    file);
        }
        var adapter = Directory.Exists(AdapterFolder) ? new BundledAdapter(AdapterName, AdapterFolder) : null;
        return ModelLoader.LoadFolder(Folder, options, SourceName, isDemo: true, Notice, adapter);
    }
}
