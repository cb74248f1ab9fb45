namespace ParaphraseService.Model.Layers;

/// <summary>
/// Whether the C# inference loops for fp32 on the CPU (<see cref="FloatLinear"/>, attention, rotary) may replace
/// LibTorch's ops on this thread. They are used only where no gradient is wanted; a computation that must give the
/// same numbers with and without a gradient (gradient checkpointing's first forward and its recomputation) turns them
/// off for its duration.
/// </summary>
public static class CpuKernels
{
    [ThreadStatic]
    private static int t_suppressed;

    public static bool Enabled => t_suppressed == 0;

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
