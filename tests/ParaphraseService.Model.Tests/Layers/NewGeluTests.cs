using ParaphraseService.Model.Kernels;
using ParaphraseService.Model.Layers;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Layers;

public class NewGeluTests
{
    // gelu_new in double, 0.5 * x * (1 + tanh(z)) with z = sqrt(2 / pi) * (x + 0.044715 * x^3), written as
    // x / (1 + e^(-2z)): the same function, without 1 + tanh(z) rounding to 0 in double for z below about -19
    private static double Exact(double x) => x / (1 + Math.Exp(-2 * Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    [Fact]
    public void IsWithinFourUlpOfTheDoubleResultBeyondTheExponentsRounding()
    {
        // every 1/256 over [-12, 12], where the result is not yet 0 or x, plus the ends of float's range
        var inputs = Enumerable.Range(0, 24 * 256 + 1).Select(i => -12f + i / 256f).Append(float.MaxValue).Append(-float.MaxValue).Append(1e-30f).ToArray();
        var outputs = new float[inputs.Length];
        VectorMath.GeluNew(inputs, outputs);
        var worst = 0.0;
        for (var i = 0; i < inputs.Length; i++)
        {
            var exact = Exact(inputs[i]);
            // Below about 1e-36 (x·e^-88, past Exp's range) a result may be flushed to 0
            if (Math.Abs(exact) < 1e-36)
            {
                Assert.True(Math.Abs(outputs[i]) < 1e-36, $"gelu_new({inputs[i]}) = {outputs[i]}, exactly {exact}");
                continue;
            }
            // error in units of the float spacing at the exact value, less what rounding the exponent in float costs
            // any fp32 evaluation: e^(e(1 + δ)) is off by a factor of 1 + eδ, with δ up to four roundings (3 ulp per unit of e)
            var ulp = Math.ScaleB(1.0, Math.ILogB(Math.Abs(exact)) - 23);
            var exponent = Math.Abs(2 * Math.Sqrt(2 / Math.PI) * (inputs[i] + 0.044715 * Math.Pow(inputs[i], 3)));
            worst = Math.Max(worst, Math.Abs(outputs[i] - exact) / ulp - 3 * Math.Min(exponent, 100));
        }
        Assert.True(worst <= 4, $"worst error {worst} ulp");
    }

    [Fact]
    public void GivesWhatPyTorchsFormGivesForNaNAndInfinities()
    {
        var outputs = new float[5];
        VectorMath.GeluNew([float.NaN, float.PositiveInfinity, 0f, float.NegativeInfinity, -1e4f], outputs);
        Assert.True(float.IsNaN(outputs[0]));
        Assert.Equal(float.PositiveInfinity, outputs[1]);
        Assert.Equal(0f, outputs[2]);
        Assert.True(float.IsNaN(outputs[3])); // as 0.5 · −∞ · (1 + tanh(−∞)) = −∞ · 0
        Assert.Equal(0f, outputs[4]);
    }

    [Theory]
    [InlineData(1, 1024)]    // a decode step
    [InlineData(5, 37)]      // a length that is not a multiple of 8
    [InlineData(300, 1024)]  // a prompt, split across threads
    public void MatchesTorchTanhGelu(int rows, int dim)
    {
        using var scope = NewDisposeScope();
        using var act = new NewGelu();
        var x = randn([rows, dim], generator: new Generator(46, CPU)) * 4;
        using var noGrad = no_grad();
        var y = act.forward(x);
        var expected = nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh);
        // LibTorch computes 1 + tanh, which loses the low bits of results near −x·0 (x around −3 to −5)
        var error = (y - expected).abs().max().item<float>();
        Assert.True(error < 1e-6, $"max |Δ| = {error}");
        Assert.Equal(x.shape, y.shape);
        // the C# pass, split across threads or not, is what ran: the same bits as the vector function over the whole tensor
        var direct = new float[rows * dim];
        VectorMath.GeluNew(x.data<float>().ToArray(), direct);
        Assert.Equal(direct, y.data<float>().ToArray());
    }

    [Fact]
    public void GradientsFlowThroughTorchGelu()
    {
        using var act = new NewGelu();
        var x = randn([2, 16], generator: new Generator(47, CPU)).requires_grad_(true);
        act.forward(x).sum().backward();
        Assert.NotNull(x.grad);
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }
}
