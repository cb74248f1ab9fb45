using ParaphraseService.Model.Layers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Layers;

/// <summary>The CPU kernels quantize each row of activations over its own range (vector-wise, as LLM.int8() does).</summary>
public class Int8PerRowActivationTests(ITestOutputHelper output)
{
    private const int In = 256;
    private const int Out = 192;

    private static (Int8Linear Layer, Tensor Weight, Tensor Bias) Layer(Int8Kernel kernel, float outlierFactor = 3f, bool keepMatrix = false)
    {
        var generator = new Generator(11, CPU);
        var weight = randn([Out, In], generator: generator) * 0.05f;
        var bias = randn([Out], generator: generator) * 0.1f;
        var layer = new Int8Linear(In, Out, hasBias: true, ScalarType.Float32, new Int8Options(kernel, outlierFactor, keepMatrix));
        layer.LoadWeight(weight, CPU);
        Assert.Equal(kernel, layer.Kernel);
        layer.bias = new TorchSharp.Modules.Parameter(bias.clone(), requires_grad: false);
        return (layer, weight, bias);
    }

    private static float RelativeError(Tensor actual, Tensor expected) => ((actual - expected).norm() / expected.norm()).item<float>();

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void ARowComputesTheSameAloneAndInABatch(Int8Kernel kernel)
    {
        var (layer, _, _) = Layer(kernel);
        using (layer)
        {
            var x = randn([5, In], generator: new Generator(3, CPU));
            x[1] *= 40f;   // a row with a much larger range
            x[2] = x[2].abs() * 0.01f; // a small, one-signed row
            x[3, 17] = 30f; // an outlier element in one row only
            var batch = layer.forward(x);
            // Equal but for the last bit of the bias addition (vectorized loops round their tails differently); one
            // activation range for the whole batch would move the small row by tens of percent.
            for (var r = 0; r < 5; r++)
                Assert.True(layer.forward(x[r..(r + 1)]).allclose(batch[r..(r + 1)], rtol: 1e-6, atol: 1e-6), $"row {r} differs alone and in the batch");
        }
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void ASmallRowBesideALargeOneKeepsItsPrecision(Int8Kernel kernel)
    {
        var (layer, weight, bias) = Layer(kernel, float.PositiveInfinity);
        using (layer)
        {
            var x = randn([2, In], generator: new Generator(5, CPU));
            x[0] *= 0.01f;
            x[1] *= 5f;
            var expected = nn.functional.linear(x, weight);
            var y = layer.forward(x) - bias;
            var smallRow = RelativeError(y[0], expected[0]);
            output.WriteLine($"small row beside a 500x larger one: relative error {smallRow:E2}");
            // One range for the whole tensor would give the small row steps 500x too coarse: an error near 1.
            Assert.InRange(smallRow, 1e-5, 2e-2);
            Assert.InRange(RelativeError(y[1], expected[1]), 1e-5, 2e-2);
        }
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void ConstantAndZeroRowsAreExact(Int8Kernel kernel)
    {
        var (layer, _, bias) = Layer(kernel, keepMatrix: true);
        using (layer)
        {
            var x = zeros([3, In]);
            x[1] = full([In], 0.75f);
            x[2] = full([In], -2f);
            var y = layer.forward(x);
            var (q, scale) = layer.QuantizedWeight();
            var dequantized = RowwiseInt8.Dequantize(q, scale, ScalarType.Float32);
            // A constant row c gives c · Σ_i w[o, i] + b with the int8 weight, with no activation rounding at all.
            Assert.True(y.allclose(nn.functional.linear(x, dequantized, bias), rtol: 1e-5, atol: 1e-5));
            Assert.True(y[0].allclose(bias));
        }
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void OutliersAreMultipliedExactly(Int8Kernel kernel)
    {
        var (layer, _, bias) = Layer(kernel, keepMatrix: true);
        using (layer)
        {
            // Rows of zeros but for a few large values: every value is an outlier of its row, none goes through the codes.
            var x = zeros([2, In]);
            x[0, 3] = 100f;
            x[0, 200] = -37.5f;
            x[1, 17] = 1e4f;
            var (q, scale) = layer.QuantizedWeight();
            var expected = nn.functional.linear(x, RowwiseInt8.Dequantize(q, scale, ScalarType.Float32), bias);
            Assert.True(layer.forward(x).allclose(expected, rtol: 1e-5, atol: 1e-4), "outliers should be multiplied in fp32 by the int8 weight");

            // ... and beside ordinary values they keep the row's range for the others: far closer than without the pass.
            var mixed = randn([4, In], generator: new Generator(9, CPU));
            mixed[.., 31] *= 80f;
            using var plain = Layer(kernel, float.PositiveInfinity, keepMatrix: true).Layer;
            var reference = nn.functional.linear(mixed, RowwiseInt8.Dequantize(q, scale, ScalarType.Float32), bias);
            var (exact, coarse) = (RelativeError(layer.forward(mixed), reference), RelativeError(plain.forward(mixed), reference));
            output.WriteLine($"a feature 80x the rest: {exact:E2} with the exact pass, {coarse:E2} without");
            Assert.True(exact < coarse / 3, $"exact pass {exact:E2}, none {coarse:E2}");
        }
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void ANonFiniteRowSpoilsOnlyItself(Int8Kernel kernel)
    {
        var (layer, _, _) = Layer(kernel);
        using (layer)
        {
            var x = randn([4, In], generator: new Generator(13, CPU));
            x[1, 5] = float.NaN;
            x[2, 9] = float.PositiveInfinity;
            var y = layer.forward(x);
            Assert.True(y[1].isnan().all().item<bool>() && y[2].isnan().all().item<bool>());
            foreach (var r in new[] { 0, 3 })
                Assert.True(y[r..(r + 1)].allclose(layer.forward(x[r..(r + 1)]), rtol: 1e-6, atol: 1e-6), $"row {r}");
        }
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    public void AnOutlierFactorThatIsNotPositiveIsRefused(float factor)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Int8Linear(In, Out, hasBias: false, ScalarType.Float32, new Int8Options(OutlierFactor: factor)));
        Assert.Contains("OutlierFactor", error.Message);
    }
}
