using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Devices;

/// <summary>Chooses where tensors live: CUDA when LibTorch sees a GPU, otherwise the CPU.</summary>
public static class TorchDevices
{
    /// <param name="requested">"auto" (default), "cpu", "cuda" or "cuda:N".</param>
    public static Device Resolve(string? requested = null)
    {
        var name = string.IsNullOrWhiteSpace(requested) ? "auto" : requested.Trim().ToLowerInvariant();
        if (name == "auto")
            return cuda.is_available() ? CUDA : CPU;
        if (name.StartsWith("cuda", StringComparison.Ordinal) && !cuda.is_available())
            throw new ArgumentException($"Device '{requested}' was requested but CUDA is not available in this build or machine.");
        try
        {
            return torch.device(name);
        }
        catch (Exception e) when (e is ArgumentException or ExternalException)
        {
            throw new ArgumentException($"Unknown device '{requested}': use auto, cpu, cuda or cuda:N.", e);
        }
    }

    /// <summary>Whether the device computes in the given reduced precision well enough to run the model in it.</summary>
    public static bool Supports(Device device, ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => true,
        // CPU LibTorch has bf16 kernels for everything GPT-J uses; fp16 matmul on CPU is slow and partly missing.
        ScalarType.BFloat16 => true,
        ScalarType.Float16 => device.type == DeviceType.CUDA,
        _ => false,
    };
}
