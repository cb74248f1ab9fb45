using ParaphraseService.Model.Devices;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>Where and in which precision to run the model.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>auto (CUDA when available, else CPU), cpu, cuda or cuda:N.</summary>
    public string Device { get; init; } = "auto";

    /// <summary>float32, bfloat16 or float16 (alias fp32, bf16, fp16).</summary>
    public string Dtype { get; init; } = "float32";

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
