using ParaphraseService.Model.Layers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Layers;

public class Int8LinearTests(ITestOutputHelper output)
{
    private const int In = 512;
    private const int Out = 384;

    private static (Tensor Weight, Tensor Bias) RandomLayer(long seed)
    {
        var generator = new Generator((ulong)seed, CPU);
        return (randn([Out, In], generator: generator) * 0.05f, randn([Out], generator: generator) * 0.1f);
    }

    private static Tensor Inputs(long seed, int rows = 8, float outlierScale = 0)
    {
        var x = randn([rows, In], generator: new Generator((ulong)seed, CPU));
        if (outlierScale > 0)
        {
            // LLM.int8()'s pattern: a few fixed features 20-100x larger than the rest, in every row.
            foreach (var feature in new[] { 7, 100, 311 })
                x[.., feature] *= outlierScale;
        }
        return x;
    }

    private static Int8Linear Quantized(Tensor weight, Tensor bias, Int8Options options)
    {
        var layer = new Int8Linear(In, Out, hasBias: true, ScalarType.Float32, options);
        layer.LoadWeight(weight, CPU);
        layer.bias = new TorchSharp.Modules.Parameter(bias.clone(), requires_grad: false);
        return layer;
    }

    private static float RelativeError(Tensor actual, Tensor expected) => ((actual - expected).norm() / expected.norm()).item<float>();

    [Fact]
    public void RowwiseRoundTripIsWithinHalfAStepPerRow()
    {
        var (w, _) = RandomLayer(1);
        w[5] *= 100; // rows keep their own range: a large row does not coarsen the others
        var (q, scale) = RowwiseInt8.Quantize(w, CPU);
        Assert.Equal(ScalarType.Int8, q.dtype);
        Assert.Equal(127, q.abs().max().item<sbyte>());
        using var back = RowwiseInt8.Dequantize(q, scale, ScalarType.Float32);
        var error = (back - w).abs();
        var bound = scale.unsqueeze(1) / 2 + 1e-7f;
        Assert.True(error.le(bound).all().item<bool>());
        Assert.True(error[0].max().item<float>() < w[0].abs().max().item<float>() / 127);
    }

    [Fact]
    public void AllZeroRowsStayZero()
    {
        var w = zeros(4, 8);
        w[1, 2] = 3;
        var (q, scale) = RowwiseInt8.Quantize(w, CPU);
        using var back = RowwiseInt8.Dequantize(q, scale, ScalarType.Float32);
        Assert.True(back.eq(w).all().item<bool>());
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2, 1.5e-2)]
    [InlineData(Int8Kernel.Fbgemm, 2e-2)]
    [InlineData(Int8Kernel.Dequantize, 1e-2)]
    public void MatchesTheFloatLayerOnOrdinaryInputs(Int8Kernel kernel, double bound)
    {
        var (w, b) = RandomLayer(2);
        using var layer = Quantized(w, b, new Int8Options(kernel));
        Assert.Equal(kernel, layer.Kernel);
        foreach (var rows in new[] { 1, 8 })
        {
            using var x = Inputs(3, rows);
            using var expected = nn.functional.linear(x, w, b);
            using var actual = layer.forward(x);
            var error = RelativeError(actual, expected);
            output.WriteLine($"{kernel}, {rows} rows: relative error {error:E2}");
            Assert.InRange(error, 1e-5, bound); // close, and really quantized
        }
    }

    [Fact]
    public void ProductsThatOverflowSixteenBitPairsStayExact()
    {
        // uint8 255 times int8 127, summed in pairs, is past 32767: CPUs without VNNI would clip it unless the
        // activations are quantized in 7 bits (FbgemmKernels.PairsSaturate says which path this machine takes).
        const int features = 256;
        using var weight = full([Out, features], 0.5f);
        using var layer = new Int8Linear(features, Out, hasBias: false, ScalarType.Float32, new Int8Options(Int8Kernel.Fbgemm));
        layer.LoadWeight(weight, CPU);
        using var x = ones([3, features]);
        x[0, 0] = 0;
        using var expected = nn.functional.linear(x, weight);
        output.WriteLine($"pairs saturate on this CPU: {FbgemmKernels.PairsSaturate}");
        Assert.InRange(RelativeError(layer.forward(x), expected), 0, 1e-2);
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    public void OutlierFeaturesGetTheirOwnPass(Int8Kernel kernel)
    {
        var (w, b) = RandomLayer(4);
        using var handled = Quantized(w, b, new Int8Options(kernel));
        using var ignored = Quantized(w, b, new Int8Options(kernel, OutlierFactor: float.PositiveInfinity));
        foreach (var scale in new[] { 20f, 100f })
        {
            using var x = Inputs(5, 8, scale);
            using var expected = nn.functional.linear(x, w, b);
            var withHandling = RelativeError(handled.forward(x), expected);
            var without = RelativeError(ignored.forward(x), expected);
            output.WriteLine($"{kernel}, outliers x{scale}: {withHandling:E2} handled, {without:E2} with one activation scale");
            Assert.InRange(withHandling, 0, 2e-2);
            Assert.True(without > 2 * withHandling, "the outlier pass should matter on these inputs");
        }
    }

    [Fact]
    public void ThreeDimensionalInputsAndNoBias()
    {
        var (w, _) = RandomLayer(6);
        using var layer = new Int8Linear(In, Out, hasBias: false, ScalarType.Float32, Int8Options.Default);
        layer.LoadWeight(w, CPU);
        using var x = randn([2, 3, In], generator: new Generator(8, CPU));
        using var y = layer.forward(x);
        Assert.Equal([2L, 3, Out], y.shape);
        // Where the kernel adds pairs in saturating 16-bit lanes (AVX2, no VNNI) activations are quantized in 7 bits,
        // not 8, which doubles their rounding step: over 300 input seeds that path measured 1.2-2.1e-2 (seed 8: 1.8e-2),
        // so 2e-2 failed now and then while the inputs were unseeded. The 8-bit path (VNNI) keeps the other tests' 2e-2.
        var bound = FbgemmKernels.PairsSaturate ? 3e-2 : 2e-2;
        var error = RelativeError(y, nn.functional.linear(x, w));
        output.WriteLine($"pairs saturate: {FbgemmKernels.PairsSaturate}, relative error {error:E2}, bound {bound:E0}");
        Assert.InRange(error, 0, bound);
        Assert.Null(layer.bias);
    }

    [Fact]
    public void StoresAboutOneBytePerWeightOrTwoWithTheOutlierPass()
    {
        var (w, b) = RandomLayer(7);
        using var fbgemm = Quantized(w, b, new Int8Options(Int8Kernel.Fbgemm, OutlierFactor: float.PositiveInfinity));
        using var withOutliers = Quantized(w, b, new Int8Options(Int8Kernel.Fbgemm));
        using var plain = Quantized(w, b, new Int8Options(Int8Kernel.Dequantize));
        Assert.InRange(fbgemm.WeightBytes, (long)In * Out, (long)(In * Out * 1.15));
        // the exact outlier pass keeps the weight's columns too: one more byte per weight
        Assert.InRange(withOutliers.WeightBytes, 2L * In * Out, (long)(In * Out * 2.15));
        Assert.InRange(plain.WeightBytes, (long)In * Out, (long)(In * Out * 1.05));
        Assert.Throws<InvalidOperationException>(() => fbgemm.QuantizedWeight());
        Assert.Equal(ScalarType.Int8, plain.QuantizedWeight().Q.dtype);
        // the AVX2 kernel reads the outliers' weights from the rows it streams anyway: no copy, and trainable as it is
        using var avx2 = Quantized(w, b, new Int8Options(Int8Kernel.Avx2));
        Assert.InRange(avx2.WeightBytes, (long)In * Out, (long)(In * Out * 1.05));
        Assert.True(avx2.SupportsTraining);
    }

    [Fact]
    public void Int8EmbeddingLooksUpDequantizedRows()
    {
        var table = randn(50, 16) * 0.3f;
        using var embedding = new Int8Embedding(50, 16, ScalarType.Float32);
        embedding.LoadWeight(table, CPU);
        using var ids = tensor(new long[,] { { 3, 49 }, { 0, 3 } });
        using var rows = embedding.forward(ids);
        Assert.Equal([2L, 2, 16], rows.shape);
        Assert.InRange(RelativeError(rows, table.index_select(0, ids.flatten()).view(2, 2, 16)), 1e-5, 1e-2);
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    [InlineData(Int8Kernel.Dequantize)]
    public void InputGradientFlowsThroughTheKeptInt8Matrix(Int8Kernel kernel)
    {
        var (weight, bias) = RandomLayer(11);
        using var layer = Quantized(weight, bias, new Int8Options(kernel, KeepWeightForTraining: true));
        var x = Inputs(12).requires_grad_(true);
        var upstream = randn([8, Out], generator: new Generator(13, CPU));
        (layer.forward(x) * upstream).sum().backward();

        // dL/dx = upstream · W, with W the dequantized weight the layer holds
        var (q, scale) = layer.QuantizedWeight();
        var expected = upstream.matmul(RowwiseInt8.Dequantize(q, scale, ScalarType.Float32));
        Assert.True(RelativeError(x.grad!, expected) < 1e-6, $"gradient error {RelativeError(x.grad!, expected)}");
        // ... and close to the full-precision layer's gradient (the weight's rounding only)
        var error = RelativeError(x.grad!, upstream.matmul(weight));
        output.WriteLine($"{kernel}: input gradient vs fp32 layer, relative L2 {error:E2}");
        Assert.True(error < 1e-2, $"gradient vs fp32: {error}");
    }

    [Fact]
    public void FbgemmWithoutTheKeptMatrixRefusesToTrainWithAClearMessage()
    {
        var (weight, bias) = RandomLayer(11);
        using var layer = Quantized(weight, bias, new Int8Options(Int8Kernel.Fbgemm));
        Assert.False(layer.SupportsTraining);
        var x = Inputs(12).requires_grad_(true);
        var error = Assert.Throws<InvalidOperationException>(() => layer.forward(x));
        Assert.Contains("KeepWeightForTraining", error.Message);
    }
}
