using ParaphraseService.Model.Kernels;
using ParaphraseService.Model.Layers;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Layers;

/// <summary>The AVX2 int8 kernel's integer arithmetic, its layout of rows and columns, and its threads.</summary>
public class Avx2Int8KernelTests
{
    // Rows of integer codes holding ±127 code with a step of exactly 1, so the kernel's product is exact integer
    // arithmetic and can be checked against fp64 to the last bit of the final fp32 multiply.
    private static Tensor IntegerRows(int rows, int k, ulong seed)
    {
        var x = randint(-127, 128, [rows, k], generator: new Generator(seed, CPU)).to(ScalarType.Float32);
        x[.., 0] = 127f;
        return x;
    }

    private static Tensor Weights(int outputs, int k, ulong seed)
    {
        var q = randint(-128, 128, [outputs, k], ScalarType.Int8, generator: new Generator(seed, CPU));
        // every weight row holds -128 (no int8 negation) and 127 at once, beside codes of both signs
        q[.., k - 1] = -128;
        q[.., 0] = 127;
        return q;
    }

    [Theory]
    [InlineData(1, 37, 13)]   // one row, 32 columns and a tail of 5
    [InlineData(3, 64, 5)]    // single rows only, no tail
    [InlineData(5, 100, 33)]  // a group of four and a single row, a tail of 4
    [InlineData(9, 300, 70)]  // two groups and a single row
    [InlineData(8, 31, 9)]    // a tail only
    public void IntegerProductsAreExactForEveryShape(int rows, int k, int outputs)
    {
        using var scope = NewDisposeScope();
        var q = Weights(outputs, k, 3);
        var scale = rand([outputs], generator: new Generator(4, CPU)) + 0.5f;
        var bias = randn([outputs], generator: new Generator(5, CPU));
        using var layer = new Int8Linear(k, outputs, hasBias: true, ScalarType.Float32, new Int8Options(Int8Kernel.Avx2, float.PositiveInfinity));
        layer.LoadQuantizedWeight(q, scale, CPU);
        layer.bias = new TorchSharp.Modules.Parameter(bias.clone(), requires_grad: false);
        var x = IntegerRows(rows, k, 6);

        var y = layer.forward(x);

        // s[o] · Σ_i x[r, i] q[o, i] + b[o] in fp64
        var expected = (x.to(ScalarType.Float64).matmul(q.to(ScalarType.Float64).t()) * scale.to(ScalarType.Float64) + bias.to(ScalarType.Float64)).to(ScalarType.Float32);
        Assert.True(y.allclose(expected, rtol: 1e-6, atol: 1e-4), $"max |Δ| {(y - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void OutliersAreFoundWhereverTheySitInTheRow()
    {
        // Rows of zeros but for large values, so every value is an outlier and the product is theirs alone: side by side in
        // one group of eight, at a group's first and last column, a whole group, and in the columns after the last eight.
        using var scope = NewDisposeScope();
        const int k = 300, outputs = 21;
        int[][] columns =
        [
            [0, 1, 7, 8, 9, 15], [63, 64], [150, 151, 152, 153, 154, 155, 156, 157], [297, 299], [296], [5, 298],
            [0, 299], [100, 101, 102], [],
        ];
        var x = zeros(columns.Length, k);
        for (var r = 0; r < columns.Length; r++)
            foreach (var (c, n) in columns[r].Select((c, n) => (c, n)))
                x[r, c] = (n % 2 == 0 ? 1 : -1) * (50f + 7 * n + r);
        var q = Weights(outputs, k, 12);
        var scale = rand([outputs], generator: new Generator(13, CPU)) + 0.5f;
        using var layer = new Int8Linear(k, outputs, hasBias: false, ScalarType.Float32, new Int8Options(Int8Kernel.Avx2, 6f));
        layer.LoadQuantizedWeight(q, scale, CPU);

        var y = layer.forward(x);

        var expected = (x.to(ScalarType.Float64).matmul(q.to(ScalarType.Float64).t()) * scale.to(ScalarType.Float64)).to(ScalarType.Float32);
        Assert.True(y.allclose(expected, rtol: 1e-5, atol: 1e-3), $"max |Δ| {(y - expected).abs().max().item<float>()}");
        Assert.True(y[^1].eq(0).all().item<bool>());
    }

    [Fact]
    public unsafe void OneThreadAndTwoGiveTheSameBits()
    {
        using var scope = NewDisposeScope();
        const int rows = 6, k = 1000, outputs = 700;
        var x = randn([rows, k], generator: new Generator(7, CPU));
        x[2, 40] = 90f; // an outlier, multiplied exactly
        var q = Weights(outputs, k, 8);
        var scale = rand([outputs], generator: new Generator(9, CPU));
        var (one, two) = (empty(rows, outputs), empty(rows, outputs));
        foreach (var (y, threads) in new[] { (one, 1), (two, 2) })
            Avx2Int8Kernel.Multiply(TensorMemory.Floats(x), rows, k, TensorMemory.Bytes(q), TensorMemory.Floats(scale), null, outputs, 6f,
                TensorMemory.Floats(y), threads);
        Assert.True(one.eq(two).all().item<bool>());
        Assert.False(one.isnan().any().item<bool>());
    }

    [Theory]
    [InlineData(1, 1000, 70)]    // one row (a decode step at batch 1): four streams of 17 outputs, two after
    [InlineData(1, 4096, 301)]   // one row, GPT-J's fc_out width of input
    [InlineData(2, 37, 13)]      // a row tile of two, a tail of 37 columns only
    [InlineData(3, 64, 5)]       // one 64-column step, an output tile of one after four
    [InlineData(5, 100, 67)]     // tiles of 4 and 1 rows; 67 outputs: a second call of the native sums with 3
    [InlineData(8, 1000, 130)]   // two row tiles, 40 columns after the last 64
    [InlineData(17, 300, 9)]     // four row tiles and one more
    [InlineData(140, 1000, 6)]   // more rows than one block keeps in L2: two blocks
    [InlineData(16, 256, 43, false)] // a decode step of 16 rows: outputs stored eight at a time, three after; no bias
    public unsafe void TheNativeSumsGiveTheManagedKernelsBits(int rows, int k, int outputs, bool withBias = true)
    {
        // The VNNI sums only run where the CPU has them (TheNativeSumsLoadWhereTheCpuHasVnni checks that they do).
        if (!NativeInt8Sums.IsSupported) return;
        using var scope = NewDisposeScope();
        var x = randn([rows, k], generator: new Generator(21, CPU));
        x[0, k / 2] = 60f; // outliers, multiplied exactly
        if (rows > 1)
        {
            x[1, 3] = -70f;
            x[1, k - 1] = 80f;
            x[rows - 1] = 0f; // a row of zeros
        }
        var q = Weights(outputs, k, 22);
        var scale = rand([outputs], generator: new Generator(23, CPU)) + 0.5f;
        var bias = randn([outputs], generator: new Generator(24, CPU));
        var (managed, native) = (empty(rows, outputs), empty(rows, outputs));
        foreach (var (y, vnni) in new[] { (managed, false), (native, true) })
            Avx2Int8Kernel.Multiply(TensorMemory.Floats(x), rows, k, TensorMemory.Bytes(q), TensorMemory.Floats(scale), withBias ? TensorMemory.Floats(bias) : null,
                outputs, 6f, TensorMemory.Floats(y), threads: 2, vnni);
        Assert.True(managed.eq(native).all().item<bool>(), $"max |Δ| {(managed - native).abs().max().item<float>()}");
    }

    [Theory]
    [InlineData(9, 1024, 256)]  // a speculative step of a trained model's fc_out
    [InlineData(300, 1024, 77)] // a prompt: three blocks of rows; 77 outputs: one after groups of four
    [InlineData(3, 4, 9)]       // the narrowest input, every column an outlier's somewhere
    public unsafe void ManyOutliersPerRowGiveTheManagedKernelsBits(int rows, int k, int outputs)
    {
        // Heavy-tailed rows as a trained model's MLP gives (a few percent of values far beyond the mean magnitude), in the
        // first and last columns too: the native path sums four outputs' outlier products at once, and each must still be
        // summed as the managed path does, in the outliers' order.
        if (!NativeInt8Sums.IsSupported) return;
        using var scope = NewDisposeScope();
        var generator = new Generator(31, CPU);
        var x = randn([rows, k], generator: generator);
        var spikes = rand([rows, k], generator: generator).lt(0.03f);
        x = where(spikes, x * 40f, x);
        x[0, 0] = 500f;
        x[0, 1] = -400f;
        x[rows - 1, k - 1] = 300f;
        x[.., k / 2] = 90f; // one column beyond in every row
        var q = Weights(outputs, k, 32);
        var scale = rand([outputs], generator: generator) + 0.5f;
        var bias = randn([outputs], generator: generator);
        var (managed, native) = (empty(rows, outputs), empty(rows, outputs));
        foreach (var (y, vnni) in new[] { (managed, false), (native, true) })
            Avx2Int8Kernel.Multiply(TensorMemory.Floats(x), rows, k, TensorMemory.Bytes(q), TensorMemory.Floats(scale), TensorMemory.Floats(bias),
                outputs, 3f, TensorMemory.Floats(y), threads: 2, vnni);
        Assert.True(managed.eq(native).all().item<bool>(), $"max |Δ| {(managed - native).abs().max().item<float>()}");
        // and the outliers were multiplied exactly: within the codes' rounding of the fp64 product
        var expected = (x.to(ScalarType.Float64).matmul(q.to(ScalarType.Float64).t()) * scale.to(ScalarType.Float64) + bias.to(ScalarType.Float64)).to(ScalarType.Float32);
        var error = (native - expected).norm().item<float>() / expected.norm().item<float>();
        Assert.True(error < 2e-2f, $"relative error {error}");
    }

    [Fact]
    public unsafe void TheNativeSumsAreExactWhereTheirOffsetSumsWrap()
    {
        // vpdpbusd reads each weight as q + 128, so it sums up to 255·127 per column: past 66,000 columns of codes 127
        // that wraps 32 bits, while the true Σ q·c (up to 127·128 a column) still fits. Wrapping is exact modulo 2^32.
        if (!NativeInt8Sums.IsSupported) return;
        using var scope = NewDisposeScope();
        const int rows = 2, k = 70_000, outputs = 3;
        var x = full(rows, k, 127f);
        x[1] = -127f;
        var q = full(outputs, k, 127, ScalarType.Int8);
        q[1] = -128;
        q[2].slice(0, 0, k, 2).fill_(-128); // a row of alternating signs
        var scale = ones(outputs);
        var y = empty(rows, outputs);
        Avx2Int8Kernel.Multiply(TensorMemory.Floats(x), rows, k, TensorMemory.Bytes(q), TensorMemory.Floats(scale), null, outputs,
            float.PositiveInfinity, TensorMemory.Floats(y), threads: 1, vnni: true);
        var expected = x.to(ScalarType.Float64).matmul(q.to(ScalarType.Float64).t()).to(ScalarType.Float32);
        Assert.True(y.allclose(expected, rtol: 1e-6, atol: 0), $"{string.Join(", ", y.data<float>().ToArray())} against {string.Join(", ", expected.data<float>().ToArray())}");
    }

    [Fact]
    public void TheNativeSumsLoadWhereTheCpuHasVnni()
    {
        // The build compiles libparaphrase_int8.so wherever it finds a C compiler (the test script installs one): a CPU
        // with AVX512-VNNI must then get the native sums, or the build or the loading is broken.
        Assert.Equal(NativeInt8Sums.CpuSupports, NativeInt8Sums.IsSupported);
    }

    [Fact]
    public unsafe void TheLayerReadsTheInt8MatrixItIsGivenWithoutACopy()
    {
        // A tied head is handed the embedding's int8 table: one copy in memory, not two.
        using var q = Weights(16, 64, 30);
        using var scale = ones(16);
        using var layer = new Int8Linear(64, 16, hasBias: false, ScalarType.Float32, new Int8Options(Int8Kernel.Avx2));
        layer.LoadQuantizedWeight(q, scale, CPU);
        Assert.True(TensorMemory.Bytes(layer.QuantizedWeight().Q) == TensorMemory.Bytes(q));
    }

    [Fact]
    public void AskingForItOnAnInputTooWideForInt32SumsIsRefusedByName()
    {
        const int wide = Avx2Int8Kernel.MaxInFeatures + 1;
        using var layer = new Int8Linear(wide, 1, hasBias: false, ScalarType.Float32, new Int8Options(Int8Kernel.Avx2));
        using var weight = ones(1, wide);
        var error = Assert.Throws<NotSupportedException>(() => layer.LoadWeight(weight, CPU));
        Assert.Contains("fbgemm", error.Message);
        // ... and the default picks a kernel that can
        using var auto = new Int8Linear(wide, 1, hasBias: false, ScalarType.Float32, Int8Options.Default);
        auto.LoadWeight(weight, CPU);
        Assert.Equal(Int8Kernel.Fbgemm, auto.Kernel);
    }

    [Fact]
    public void TheDefaultOnThisCpuIsTheAvx2Kernel()
    {
        using var layer = new Int8Linear(64, 8, hasBias: false, ScalarType.Float32, Int8Options.Default);
        using var weight = randn(8, 64);
        layer.LoadWeight(weight, CPU);
        Assert.Equal(Avx2Int8Kernel.IsSupported ? Int8Kernel.Avx2 : Int8Kernel.Fbgemm, layer.Kernel);
        // what the service's log and `bench profile` print: whether the VNNI sums run here
        Assert.Equal(Avx2Int8Kernel.IsSupported && NativeInt8Sums.IsSupported, layer.Compute.Contains("AVX512-VNNI"));
    }
}
