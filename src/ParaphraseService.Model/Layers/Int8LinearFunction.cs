using static TorchSharp.torch;

namespace ParaphraseService.Model.Layers;

/// <summary>
/// The autograd rule of a frozen int8 Linear: the forward is the layer's own kernel (no graph, nothing saved), and the
/// backward gives the input gradient from the int8 matrix, dequantized for that one layer only. Autograd through the
/// plain dequantize path would instead keep every layer's dequantized weight alive until the backward pass: a full
/// fp32 copy of the model.
/// </summary>
internal sealed class Int8LinearFunction : autograd.SingleTensorFunction<Int8LinearFunction>
{
    public override string Name => nameof(Int8LinearFunction);

    /// <param name="vars">x, then the <see cref="Int8Linear"/>.</param>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (x, layer) = ((Tensor)vars[0], (Int8Linear)vars[1]);
        ctx.save_data("layer", layer);
        ctx.save_data("dtype", x.dtype);
        return layer.ForwardWithoutGraph(x);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (Int8Linear)ctx.get_data("layer");
        var dtype = (ScalarType)ctx.get_data("dtype");
        var (q, scale) = layer.QuantizedWeight();
        using var scope = NewDisposeScope();
        // dL/dx = dL/dy · W with W = diag(s) · q, so (dL/dy ⊙ s) · q
        var grad = (gradOutput.to(ScalarType.Float32) * scale).matmul(q.to(ScalarType.Float32));
        // One entry per argument of forward: none for the layer.
        return [grad.to(dtype).MoveToOuterDisposeScope(), null!];
    }
}
