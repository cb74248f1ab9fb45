using ParaphraseService.Model.Layers;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Layers;

public class FloatLayerNormTests
{
    private static FloatLayerNorm Trained(int dim)
    {
        var layer = new FloatLayerNorm(dim, 1e-5, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        layer.weight.copy_(randn([dim], generator: new Generator(41, CPU)));
        layer.bias.copy_(randn([dim], generator: new Generator(42, CPU)));
        return layer;
    }

    [Theory]
    [InlineData(1, 256)]     // a decode step
    [InlineData(9, 256)]     // a speculative step: LibTorch would wake its threads here
    [InlineData(3, 37)]      // a row length that is not a multiple of 8
    [InlineData(600, 512)]   // a prompt, split across threads
    public void MatchesTorchLayerNorm(int rows, int dim)
    {
        using var scope = NewDisposeScope();
        using var layer = Trained(dim);
        var x = randn([rows, dim], generator: new Generator(43, CPU)) * 3 + 1; // a mean and a spread far from 0 and 1
        using var noGrad = no_grad();
        var y = layer.forward(x);
        var expected = nn.functional.layer_norm(x, [dim], layer.weight, layer.bias, 1e-5);
        var error = (y - expected).abs().max().item<float>();
        Assert.True(error < 1e-5, $"max |Δ| = {error}");
    }

    [Fact]
    public void GradientsFlowThroughTorchLayerNorm()
    {
        using var layer = Trained(16);
        var x = randn([2, 16], generator: new Generator(44, CPU)).requires_grad_(true);
        (layer.forward(x) * randn([2, 16], generator: new Generator(45, CPU))).sum().backward();
        Assert.NotNull(x.grad);
        Assert.NotNull(layer.weight.grad);
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void StartsAsNnLayerNormDoes()
    {
        using var ours = new FloatLayerNorm(8, 1e-5, CPU, ScalarType.Float32);
        using var theirs = nn.LayerNorm(8);
        Assert.True(ours.weight.eq(theirs.weight!).all().item<bool>());
        Assert.True(ours.bias.eq(theirs.bias!).all().item<bool>());
    }
}
