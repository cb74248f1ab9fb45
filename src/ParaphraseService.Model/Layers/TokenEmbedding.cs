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
    private Parameter _weight;

    public TokenEmbedding(long count, long dim, ScalarType dtype, Device device) : base(nameof(TokenEmbedding))
    {
        using var noGrad = torch.no_grad();
        // nn.Embedding's init: normal(0, 1); a no-op on the meta device.
        _weight = new Parameter(torch.empty(count, dim, dtype, device).normal_());
        register_parameter(nameof(weight), _weight);
    }

    public Parameter weight
    {
        get => _weight;
        set
        {
            _weight = value;
            ConditionallyRegisterParameter(nameof(weight), value);
        }
    }

    /// <summary>(…) ids → (…, dim) vectors.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long[] shape = [.. ids.shape, _weight.shape[1]];
        return _weight.index_select(0, ids.flatten()).view(shape).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _weight.Dispose();
        base.Dispose(disposing);
    }
}
