using ParaphraseService.Model.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// A full-precision Linear, y = x · weightᵀ + bias, as <c>nn.Linear</c> (same parameter names, shapes and initialisation),
/// that multiplies a decode step's few fp32 rows on the CPU with <see cref="Avx2FloatKernel"/>, where LibTorch's GEMM
/// leaves much of the memory bandwidth unused. Everything else (gradients, other dtypes and devices, more rows) is
/// <c>nn.functional.linear</c>.
/// </summary>
public sealed class FloatLinear : nn.Module<Tensor, Tensor>
{
    private static readonly double Sqrt5 = Math.Sqrt(5);

    public FloatLinear(long inFeatures, long outFeatures, bool hasBias, Device device, ScalarType dtype) : base(nameof(FloatLinear))
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        using var noGrad = torch.no_grad();
        var w = torch.empty(outFeatures, inFeatures, dtype, device);
        // nn.Linear's reset_parameters: kaiming_uniform_(weight, a=sqrt(5)), bias uniform(-1/sqrt(in), 1/sqrt(in)); no-ops on meta
        nn.init.kaiming_uniform_(w, a: Sqrt5);
        register_parameter(nameof(weight), new Parameter(w));
        if (hasBias)
        {
            var bound = inFeatures > 0 ? 1 / Math.Sqrt(inFeatures) : 0;
            register_parameter(nameof(bias), new Parameter(nn.init.uniform_(torch.empty(outFeatures, dtype, device), -bound, bound)));
        }
    }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    public Parameter weight
    {
        get => get_parameter(nameof(weight)) ?? throw new InvalidOperationException("FloatLinear has no weight.");
        set => ConditionallyRegisterParameter(nameof(weight), value);
    }

    public Parameter? bias
    {
        get => get_parameter(nameof(bias));
        set => ConditionallyRegisterParameter(nameof(bias), value);
    }

    public override Tensor forward(Tensor x)
    {
        var (w, b) = (weight, bias);
        return UsesKernel(x, w, b) ? KernelForward(x, w, b) : nn.functional.linear(x, w, b);
    }

    private static bool UsesKernel(Tensor x, Tensor w, Tensor? b) =>
        Avx2FloatKernel.IsSupported && CpuKernels.Active
        && CpuKernels.IsCpuFloat(x) && CpuKernels.IsCpuFloat(w) && (b is null || CpuKernels.IsCpuFloat(b))
        && w.dim() == 2 && w.size(1) > 0 && x.dim() >= 1 && x.size(-1) == w.size(1) && x.numel() / w.size(1) <= Avx2FloatKernel.MaxRows;

    private static unsafe Tensor KernelForward(Tensor x, Tensor w, Tensor? b)
    {
        // The weight's own shape, not the constructor's: a parameter can be replaced
        var (outputs, k) = (w.size(0), w.size(1));
        if (b is not null && b.numel() != outputs)
            throw new ArgumentException($"FloatLinear's bias has {b.numel()} values for {outputs} outputs.");
        var shape = TensorMemory.ShapeWithLast(x, outputs);
        var y = empty(shape, ScalarType.Float32);
        Avx2FloatKernel.Multiply(TensorMemory.Floats(x), (int)(x.numel() / k), (int)k, TensorMemory.Floats(w),
            b is null ? null : TensorMemory.Floats(b), (int)outputs, TensorMemory.Floats(y), torch.get_num_threads());
        return y;
    }
}
