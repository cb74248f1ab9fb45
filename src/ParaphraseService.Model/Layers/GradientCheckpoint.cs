using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// Gradient checkpointing (PyTorch's reentrant <c>torch.utils.checkpoint</c>): a segment runs forward without keeping
/// its activations, and the backward pass runs it again, with the same random state, to get them back. Training then
/// holds one block's activations at a time instead of every block's, for one more forward pass.
/// </summary>
public static class GradientCheckpoint
{
    /// <summary>
    /// <paramref name="segment"/>(x, constants) with its activations recomputed during the backward pass.
    /// <paramref name="constants"/> are tensors the segment reads but does not differentiate (masks, angles): they are
    /// kept alive for the recomputation. Without a gradient to compute this is a plain call.
    /// </summary>
    public static Tensor Run(Func<Tensor, IReadOnlyList<Tensor>, Tensor> segment, Tensor x, params Tensor[] constants)
    {
        if (!is_grad_enabled())
            return segment(x, constants);
        // Parameters inside the segment need a graph node even when x itself needs no gradient (the first block).
        if (!x.requires_grad)
            x = x.detach().requires_grad_(true);
        return Function.apply([x, segment, .. constants]);
    }

    private sealed class Function : autograd.SingleTensorFunction<Function>
    {
        public override string Name => nameof(GradientCheckpoint);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var segment = (Func<Tensor, IReadOnlyList<Tensor>, Tensor>)vars[1];
            var constants = vars.Skip(2).Cast<Tensor>().ToList();
            ctx.save_data("segment", segment);
            // preserve_rng_state=True: dropout masks of the recomputation must equal the first run's.
            ctx.save_for_backward([x, random.get_rng_state(), .. constants]);
            if (x.device.type == DeviceType.CUDA)
            {
                // TorchSharp cannot read a CUDA generator's state: seed it here, and again before the recomputation.
                var seed = randint(0, int.MaxValue, [1], ScalarType.Int64).item<long>();
                cuda.manual_seed(seed);
                ctx.save_data("cudaSeed", seed);
            }
            // The recomputation runs with gradients, so on LibTorch's ops: this run must compute the same numbers.
            using var sameOps = CpuKernels.Suppress();
            return segment(x, constants);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var segment = (Func<Tensor, IReadOnlyList<Tensor>, Tensor>)ctx.get_data("segment");
            var saved = ctx.get_saved_variables();
            var (x, rngState, constants) = (saved[0], saved[1], saved.Skip(2).ToList());
            var current = random.get_rng_state();
            random.set_rng_state(rngState);
            if (ctx.get_data("cudaSeed") is long cudaSeed)
                cuda.manual_seed(cudaSeed);
            try
            {
                using var scope = NewDisposeScope();
                using var grad = enable_grad();
                var input = x.detach().requires_grad_(true);
                // Reentrant backward: this accumulates the gradients of the segment's parameters and of its input.
                segment(input, constants).backward([gradOutput]);
                // One entry per argument of forward: none for the segment and the constants.
                return [input.grad!.MoveToOuterDisposeScope(), .. Enumerable.Repeat<Tensor>(null!, 1 + constants.Count)];
            }
            finally
            {
                random.set_rng_state(current);
                current.Dispose();
            }
        }
    }
}
