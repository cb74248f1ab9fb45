using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>A ready-to-run model with its tokenizer and a description of where it came from.</summary>
public sealed class LoadedModel(
    CausalLM model, Gpt2Tokenizer tokenizer, string source, bool isDemo, Device device, ScalarType dtype, Quantization quantization,
    int maxResidentAdapters = 0) : IDisposable
{
    public CausalLM Model { get; } = model;
    public Gpt2Tokenizer Tokenizer { get; } = tokenizer;
    public ICausalLMConfig Config => Model.Config;

    /// <summary>The folder, hub id, "demo" or "demo-random" it was loaded from.</summary>
    public string Source { get; } = source;

    /// <summary>A built-in demo model (<see cref="DemoModel"/>, <see cref="RandomDemoModel"/>): runs offline, but it is no real LLM.</summary>
    public bool IsDemo { get; } = isDemo;

    /// <summary>What a user should be told about the model's output (the demo models), or null.</summary>
    public string? Notice { get; init; }

    /// <summary>
    /// A LoRA adapter that ships with the model (the demo's paraphrase adapter): to be listed with the stored adapters
    /// and used for paraphrasing when a request names none. Null for models that bring none.
    /// </summary>
    public BundledAdapter? BundledAdapter { get; init; }

    public Device Device { get; } = device;
    public ScalarType Dtype { get; } = dtype;
    public Quantization Quantization { get; } = quantization;

    /// <summary>The dtype generation's KV caches keep keys and values in (ModelLoadOptions.KvCache, resolved).</summary>
    public ScalarType KvCacheDtype => Model.KvCacheDtype ?? Dtype;

    /// <summary>The int8 kernel in words (<see cref="Int8Linear.Compute"/>); null for full-precision weights.</summary>
    public string? Int8Compute => Model.modules().OfType<Int8Linear>().FirstOrDefault()?.Compute;

    /// <summary>Resident LoRA adapters, when the model was loaded with LoRA support (ModelLoadOptions.MaxResidentAdapters).</summary>
    public AdapterRegistry? Adapters { get; } = model.Lora is null ? null : new AdapterRegistry(model, maxResidentAdapters);

    /// <summary>
    /// Opens the checkpoint the model was loaded from again (named and shaped as the model holds it), e.g. to derive
    /// the int8 matrices a fine-tune needs; null when there is none to open.
    /// </summary>
    public Func<ICheckpointSource>? OpenCheckpoint { get; init; }

    /// <param name="speculation">Prompt-lookup speculation (the same output, fewer passes); null: off.</param>
    public TextGenerator CreateGenerator(SpeculationOptions? speculation = null) => new(Model, Tokenizer, speculation);

    public void Dispose()
    {
        Adapters?.Dispose();
        Model.Dispose();
    }
}
