using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// Whether the C# inference loops for fp32 on the CPU (the fp32 Linear and LayerNorm, attention,
/// rotary) may replace LibTorch's ops on this thread. They run only where no gradient is recorded (inside no_grad, as
/// generation and evaluation run), so a training step computes with LibTorch's ops whether or not its first layers
/// need gradients; a computation that must give the same numbers with and without recording (gradient checkpointing's
/// first forward and its recomputation) turns them off for its duration.
/// </summary>
public static class CpuKernels
{
    [ThreadStatic]
    private static int t_suppressed;

    public static bool Enabled => t_suppressed == 0;

    /// <summary>Whether the loops run now: not suppressed on this thread, and no gradient being recorded.</summary>
    public static bool Active => Enabled && !torch.is_grad_enabled();

    /// <summary>A tensor the loops read or write through a raw pointer: fp32, contiguous, in CPU memory.</summary>
    public static bool IsCpuFloat(Tensor t) => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous();

    /// <summary>LibTorch's ops only, on this thread, until the returned scope is disposed.</summary>
    public static IDisposable Suppress()
    {
        t_suppressed++;
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            t_suppressed--;
        }
    }
}
