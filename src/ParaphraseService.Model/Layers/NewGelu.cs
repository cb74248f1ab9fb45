using System.Runtime.Intrinsics;
using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// gelu_new (transformers' <c>NewGELUActivation</c>, the MLP's <c>act</c>): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
/// On the CPU, for fp32 without a gradient, one vectorized C# pass (<see cref="VectorMath.GeluNew(Vector256{float})"/>);
/// LibTorch's tanh-approximate GELU took 2.4-4.7 ns an element here, the pass 0.9-2.1 (most of the MLP's own time at
/// batch 8 on bench-250m).
/// Everything else is <c>nn.functional.gelu(x, approximate: "tanh")</c>.
/// </summary>
public sealed class NewGelu() : nn.Module<Tensor, Tensor>(nameof(NewGelu))
{
    // Elements below which one thread does the whole tensor (a decode step's few rows).
    private const long ParallelElements = 1 << 14;

    public override Tensor forward(Tensor x) =>
        UsesLoop(x) ? Apply(x) : nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh);

    private static bool UsesLoop(Tensor x) => Vector256.IsHardwareAccelerated && CpuKernels.Active && CpuKernels.IsCpuFloat(x);

    private static unsafe Tensor Apply(Tensor x)
    {
        var y = empty_like(x);
        var (input, output, count) = ((IntPtr)TensorMemory.Floats(x), (IntPtr)TensorMemory.Floats(y), x.numel());
        var threads = torch.get_num_threads();
        // parts of at most 2^30 values, so a span's length fits an int
        var parts = (int)Math.Max(count < ParallelElements ? 1 : threads * 4, (count >> 30) + 1);
        KernelThreads.Run(parts, threads, part =>
        {
            var (start, end) = (count * part / parts, count * (part + 1) / parts);
            VectorMath.GeluNew(new ReadOnlySpan<float>((float*)input + start, (int)(end - start)), new Span<float>((float*)output + start, (int)(end - start)));
        });
        return y;
    }
}
