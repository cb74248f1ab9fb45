using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>Gradient checkpointing of decoder blocks, the same for every family's trunk.</summary>
internal static class BlockCheckpointing
{
    /// <summary>Whether this forward recomputes block activations in its backward pass: asked for, training, no cache.</summary>
    public static bool Applies(CausalLMInput input, bool training) =>
        input.GradientCheckpointing && training && input.Cache is null && is_grad_enabled();

    /// <summary>
    /// Runs <paramref name="block"/>(hidden, constants) checkpointed. The backward pass runs the block again after the
    /// model's forward has returned, so the rows' adapter routing is set again for it.
    /// </summary>
    public static Tensor Run(Func<Tensor, IReadOnlyList<Tensor>, Tensor> block, Tensor hidden, LoraRouting? lora,
        IReadOnlyList<LoraAdapter?>? adapters, params Tensor[] constants) =>
        GradientCheckpoint.Run((x, c) =>
        {
            using var routing = lora?.Rows is null ? lora?.Use(adapters) : null;
            return block(x, c);
        }, hidden, constants);
}
