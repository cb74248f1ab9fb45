using ParaphraseService.Model.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// A lookup table of token vectors. TorchSharp's <c>nn.Embedding</c> initialises its weight on the CPU even when asked
/// for the meta device (measured: 400 MB resident for GPT-J's table), which defeats building a 6B model as shapes
/// only; this one creates its weight directly where asked.
/// </summary>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    // The weight lives only in the parameter registry: a Parameter field would be registered a second time, under the
    // field's name, when a parent module registers this one.
    public TokenEmbedding(long count, long dim, ScalarType dtype, Device device) : base(nameof(TokenEmbedding))
    {
        using var noGrad = torch.no_grad();
        // nn.Embedding's init: normal(0, 1); a no-op on the meta device.
        register_parameter(nameof(weight), new Parameter(torch.empty(count, dim, dtype, device).normal_()));
    }

    public Parameter weight
    {
        get => get_parameter(nameof(weight)) ?? throw new InvalidOperationException("TokenEmbedding has no weight.");
        set => ConditionallyRegisterParameter(nameof(weight), value);
    }

    /// <summary>(…) ids → (…, dim) vectors.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var table = weight;
        var shape = TensorMemory.ShapeWithLast(ids, table.size(1), replaceLast: false);
        return table.index_select(0, ids.flatten()).view(shape).MoveToOuterDisposeScope();
    }
}
