using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Builds a model from a Hugging Face model folder (config.json, weights, tokenizer files); config.json's
/// <c>model_type</c> picks the family (<see cref="ModelFamilies"/>).
/// </summary>
public static class ModelLoader
{
    /// <param name="sourceName">How to name the model in logs and responses; the folder by default.</param>
    /// <exception cref="InvalidDataException">config.json is missing, invalid, or names a model_type this service does not run.</exception>
    public static LoadedModel LoadFolder(string folder, ModelLoadOptions options, string? sourceName = null) =>
        LoadFolder(folder, options, sourceName, isDemo: false, notice: null, bundledAdapter: null);

    internal static LoadedModel LoadFolder(string folder, ModelLoadOptions options, string? sourceName, bool isDemo, string? notice, BundledAdapter? bundledAdapter)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        var (device, dtype) = options.Resolve();
        var (family, config) = ModelFamilies.LoadConfig(Path.Combine(folder, "config.json"));
        using var files = CheckpointFiles.Open(folder);
        // The family's file conventions (a missing "transformer." prefix, Conv1D weights stored [in, out]) are undone here,
        // so everything below sees the model's own names and shapes.
        using var checkpoint = new CheckpointView(files, family.Checkpoint);
        var layers = LayersFor(checkpoint, options, dtype, device);
        var kvCache = options.ResolveKvCache(layers.Quantization, dtype, device.type); // refused before the weights are read, not after
        // Before the weights too: a broken tokenizer file is said at once, not after minutes of reading a large model.
        var tokenizer = Gpt2Tokenizer.FromFolder(folder);
        var model = Build(config, checkpoint, layers, folder);
        model.KvCacheDtype = kvCache;
        return new LoadedModel(model, tokenizer, sourceName ?? folder, isDemo, device, dtype, layers.Quantization,
            options.MaxResidentAdapters)
        {
            OpenCheckpoint = () => new OwnedView(CheckpointFiles.Open(folder), family.Checkpoint),
            Notice = notice,
            BundledAdapter = bundledAdapter,
        };
    }

    /// <summary>A family's view of a folder's files that closes the files with it.</summary>
    private sealed class OwnedView(ICheckpointSource files, CheckpointConventions conventions) : ICheckpointSource
    {
        private readonly CheckpointView _view = new(files, conventions);

        public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors => _view.Tensors;

        public Tensor Read(string name) => _view.Read(name);

        public void Dispose()
        {
            _view.Dispose();
            files.Dispose();
        }
    }

    /// <summary>The layer settings for a checkpoint: dtype, device, and int8 or full precision (see ModelLoadOptions).</summary>
    internal static LayerFactory LayersFor(ICheckpointSource checkpoint, ModelLoadOptions options, ScalarType dtype, Device device)
    {
        var isInt8 = checkpoint.Tensors.Keys.Any(k => k.EndsWith(".weight" + StateDictLoader.ScaleSuffix, StringComparison.Ordinal));
        // The checkpoint's own tensor sizes say how big the model is; no need to build it twice.
        var parameters = checkpoint.Tensors.Values.Where(t => !StateDictLoader.IsIgnored(t.Name)).Sum(t => t.ElementCount);
        return new LayerFactory(dtype, device, options.ResolveQuantization(parameters, isInt8), options.Int8,
            options.MaxResidentAdapters > 0 ? new LoraRouting() : null);
    }

    /// <summary>Shapes first on the meta device, then each weight streamed in from the checkpoint.</summary>
    /// <remarks>Int8 layers quantize each weight as it arrives, so the full-precision model never exists.</remarks>
    public static GptJForCausalLM Build(GptJConfig config, ICheckpointSource checkpoint, LayerFactory layers, string sourceName) =>
        (GptJForCausalLM)Build((ICausalLMConfig)config, checkpoint, layers, sourceName);

    /// <summary>Builds the config's family on the meta device, then streams each weight in from the checkpoint.</summary>
    /// <param name="checkpoint">Tensors named and shaped as the model holds them (see <see cref="CheckpointView"/>).</param>
    public static CausalLM Build(ICausalLMConfig config, ICheckpointSource checkpoint, LayerFactory layers, string sourceName)
    {
        StateDictLoader.CheckBeforeBuilding(config, checkpoint, layers, sourceName);
        var model = ModelFamilies.Create(config, layers with { Device = torch.device("meta") });
        try
        {
            StateDictLoader.Load(model, checkpoint, layers.Dtype, layers.Device, sourceName);
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
