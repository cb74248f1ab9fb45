using ParaphraseService.Model.Devices;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>Where and in which precision to run the model.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>auto (CUDA when available, else CPU), cpu, cuda or cuda:N.</summary>
    public string Device { get; init; } = "auto";

    /// <summary>float32, bfloat16 or float16 (alias fp32, bf16, fp16).</summary>
    public string Dtype { get; init; } = "float32";

    /// <summary>auto, none or int8: how Linear and embedding weights are stored (see <see cref="ResolveQuantization"/>).</summary>
    public string Quantization { get; init; } = "auto";

    /// <summary>
    /// How generation's KV caches keep keys and values: auto (bfloat16 where the weights are int8 and the model computes
    /// in float32 on the CPU, otherwise as computed), model (as the model computes them) or bfloat16 (half the memory of float32,
    /// and half the bytes each decode step reads back; see <see cref="ResolveKvCache"/>).
    /// </summary>
    public string KvCache { get; init; } = "auto";

    /// <summary>Int8 compute path and outlier threshold.</summary>
    public Int8Options Int8 { get; init; } = Int8Options.Default;

    /// <summary>
    /// Most LoRA adapters kept resident at once; 0 builds the model without LoRA support (no wrappers around its
    /// Linears). With support, the loaded model has an <see cref="LoadedModel.Adapters"/> registry.
    /// </summary>
    public int MaxResidentAdapters { get; init; }

    /// <summary>Models at least this large are stored in 8 bits under "auto".</summary>
    public const long AutoInt8Parameters = 1_000_000_000;

    /// <summary>
    /// "auto" stores a model of a billion parameters or more (GPT-J-6B) in 8 bits and smaller ones in full precision;
    /// a checkpoint that is already int8 always loads as int8.
    /// </summary>
    public Quantization ResolveQuantization(long parameterCount, bool checkpointIsInt8) => Quantization.Trim().ToLowerInvariant() switch
    {
        "auto" => checkpointIsInt8 || parameterCount >= AutoInt8Parameters ? Layers.Quantization.Int8 : Layers.Quantization.None,
        "int8" => Layers.Quantization.Int8,
        "none" when checkpointIsInt8 => throw new ArgumentException(
            "This checkpoint is int8-quantized; load it with quantization int8 (or auto), or use the full-precision original."),
        "none" => Layers.Quantization.None,
        _ => throw new ArgumentException($"Unknown quantization '{Quantization}': use auto, none or int8."),
    };

    /// <summary>
    /// The dtype of <see cref="KvCache"/> for a model of this quantization computing in <paramref name="dtype"/> on
    /// <paramref name="device"/>; null: as computed. "auto" rounds to bfloat16 only for int8 weights: there it adds
    /// nothing measurable to their own error (the demo model's logits against full precision: 8.51e-3 relative L2 with
    /// it, 8.48e-3 without; greedy outputs equal to full precision's 43 of 64 either way), where in a full-precision model
    /// it would be the one error (8e-4). And only on the CPU, whose attention loop reads bfloat16 as it is; elsewhere
    /// LibTorch's ops would first widen the whole cache at every step.
    /// </summary>
    public ScalarType? ResolveKvCache(Quantization quantization, ScalarType dtype, DeviceType device) => KvCache.Trim().ToLowerInvariant() switch
    {
        "auto" => quantization == Layers.Quantization.Int8 && dtype == ScalarType.Float32 && device == DeviceType.CPU ? ScalarType.BFloat16 : null,
        "model" => null,
        "bfloat16" or "bf16" => dtype == ScalarType.BFloat16 ? null : ScalarType.BFloat16,
        _ => throw new ArgumentException($"Unknown KV cache dtype '{KvCache}': use auto, model or bfloat16."),
    };

    /// <summary>Refuses, by name, a dtype, quantization or KV cache setting that is not one of the known values.</summary>
    /// <exception cref="ArgumentException">A setting is unknown.</exception>
    public void Validate()
    {
        ResolveDtype();
        ResolveQuantization(parameterCount: 0, checkpointIsInt8: false);
        ResolveKvCache(Layers.Quantization.None, ScalarType.Float32, DeviceType.CPU);
    }

    public ScalarType ResolveDtype() => Dtype.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" => ScalarType.Float16,
        _ => throw new ArgumentException($"Unknown dtype '{Dtype}': use float32, bfloat16 or float16."),
    };

    /// <summary>The device and dtype, checked against each other.</summary>
    public (Device Device, ScalarType Dtype) Resolve()
    {
        var device = TorchDevices.Resolve(Device);
        var dtype = ResolveDtype();
        if (!TorchDevices.Supports(device, dtype))
            throw new ArgumentException($"{dtype} is not supported on {device.type}; use float32 or bfloat16 there.");
        return (device, dtype);
    }
}
