using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.GptJ;

public class GptJEquivalenceTests
{
    private static readonly long[] Sequence = [5, 17, 42, 8, 91, 3, 60, 22, 14, 77, 35];

    [Fact]
    public void IncrementalDecodingWithTheCacheEqualsTheFullForward()
    {
        using var model = TinyModels.Create();
        using var full = TinyModels.Logits(model, Sequence); // (1, T, V)

        using var noGrad = no_grad();
        using var cache = new KvCache(TinyModels.Config.LayerCount, Sequence.Length);
        const int prefill = 6;
        var pieces = new List<Tensor> { model.forward(new CausalLMInput(tensor(Sequence[..prefill]).unsqueeze(0), Cache: cache)) };
        for (var t = prefill; t < Sequence.Length; t++)
            pieces.Add(model.forward(new CausalLMInput(tensor(new[] { Sequence[t] }).unsqueeze(0), Cache: cache)));
        using var incremental = cat(pieces, 1);

        Assert.Equal(Sequence.Length, cache.Length);
        Assert.True(full.allclose(incremental, rtol: 0, atol: 1e-5), $"max |Δ| = {(full - incremental).abs().max().item<float>()}");
        // The cached and uncached paths must not be trivially equal because both ignore the history.
        using var alone = TinyModels.Logits(model, Sequence[^1..]);
        Assert.False(alone[0, 0].allclose(full[0, -1], rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void LeftPaddedBatchRowEqualsTheRowRunAlone()
    {
        using var model = TinyModels.Create();
        long[][] rows = [Sequence[..8], Sequence[3..8], Sequence[..2]];
        const long pad = 1;
        var ids = new long[3, 8];
        var mask = new long[3, 8];
        for (var r = 0; r < 3; r++)
            for (var t = 0; t < 8; t++)
            {
                var offset = 8 - rows[r].Length;
                ids[r, t] = t < offset ? pad : rows[r][t - offset];
                mask[r, t] = t < offset ? 0 : 1;
            }

        using var noGrad = no_grad();
        using var batch = model.forward(new CausalLMInput(tensor(ids), tensor(mask)));
        for (var r = 0; r < 3; r++)
        {
            using var alone = TinyModels.Logits(model, rows[r]);
            using var inBatch = batch[r, (8 - rows[r].Length)..];
            Assert.True(alone[0].allclose(inBatch, rtol: 0, atol: 1e-5), $"row {r}: max |Δ| = {(alone[0] - inBatch).abs().max().item<float>()}");
            Assert.False(inBatch.isnan().any().item<bool>());
        }
    }

    [Fact]
    public void PositionIdsOfALeftPaddedBatchStartAtZeroOnTheFirstRealToken()
    {
        using var mask = tensor(new long[,] { { 1, 1, 1, 1 }, { 0, 0, 1, 1 }, { 0, 0, 0, 1 } });
        using var positions = PositionIds.FromAttentionMask(mask);
        Assert.Equal(new long[] { 0, 1, 2, 3, 1, 1, 0, 1, 1, 1, 1, 0 }, positions.data<long>().ToArray());
    }

    [Fact]
    public void RotaryScoresDependOnRelativePositionOnly()
    {
        using var rotary = new RotaryEmbedding(rotaryDim: 8, maxPositions: 128);
        var generator = new Generator(3, CPU);
        using var q = randn([1, 1, 2, 16], generator: generator); // (B, T, H, D)
        using var k = randn([1, 1, 2, 16], generator: generator);

        float Score(long m, long n)
        {
            using var scope = NewDisposeScope();
            var qr = rotary.Apply(q, tensor(new[] { m }).unsqueeze(0));
            var kr = rotary.Apply(k, tensor(new[] { n }).unsqueeze(0));
            return (qr * kr).sum().item<float>();
        }

        var reference = Score(9, 4);
        foreach (var shift in new long[] { 1, 7, 50, 110 })
            Assert.Equal(reference, Score(9 + shift, 4 + shift), 4);
        Assert.NotEqual(reference, Score(9, 5), 2); // and it does depend on the distance

        // Only the first rotary_dim dims of each head rotate; position 0 rotates nothing.
        using var moved = rotary.Apply(q, tensor(new long[] { 13 }).unsqueeze(0));
        Assert.True(moved[.., .., .., 8..].allclose(q[.., .., .., 8..], rtol: 0, atol: 0));
        Assert.False(moved[.., .., .., ..8].allclose(q[.., .., .., ..8]));
        using var atZero = rotary.Apply(q, tensor(new long[] { 0 }).unsqueeze(0));
        Assert.True(atZero.allclose(q));
    }

    [Fact]
    public void RotaryRotatesInterleavedPairs()
    {
        // For one pair (x0, x1) at position p with inverse frequency 1: (x0 cos p - x1 sin p, x1 cos p + x0 sin p).
        using var rotary = new RotaryEmbedding(rotaryDim: 2, maxPositions: 8);
        using var x = tensor(new float[] { 1, 2, 3 }).view(1, 1, 1, 3);
        using var y = rotary.Apply(x, tensor(new long[] { 3 }).unsqueeze(0));
        var (c, s) = (MathF.Cos(3), MathF.Sin(3));
        Assert.Equal(new[] { 1 * c - 2 * s, 2 * c + 1 * s, 3f }, y.data<float>().ToArray(), new FloatComparer(1e-6f));
    }

    [Fact]
    public void RotaryTableCoversThePositionsUsedNotAllOfNPositions()
    {
        // n_positions 50,000,000 built a 9.7 GB table at load; the context actually used is what counts.
        using var scope = NewDisposeScope();
        using var rotary = new RotaryEmbedding(rotaryDim: 64, maxPositions: 1 << 20);
        Assert.Equal(2048, rotary.TablePositions);

        var early = rotary.Angles(tensor(new long[] { 0, 5, 2047 }).unsqueeze(0));
        Assert.Equal(2048, rotary.TablePositions);
        var late = rotary.Angles(tensor(new long[] { 3, 5000 }).unsqueeze(0));
        Assert.Equal(5001, rotary.TablePositions);

        // The grown table extends the first one: position 5 reads the same angles before and after.
        var again = rotary.Angles(tensor(new long[] { 5 }).unsqueeze(0));
        Assert.True(again.Sin[0, 0].allclose(early.Sin[0, 1], rtol: 0, atol: 0));
        Assert.True(again.Cos[0, 0].allclose(early.Cos[0, 1], rtol: 0, atol: 0));
        // sinusoid_inp = arange(num_pos) x inv_freq: the first pair of position 5000 turns at inverse frequency 1.
        Assert.Equal(MathF.Sin(5000f), late.Sin[0, 1, 0, 0].item<float>(), 1e-3f);
        Assert.Throws<ArgumentOutOfRangeException>(() => rotary.Angles(tensor(new long[] { 1 << 20 }).unsqueeze(0)));
    }

    [Fact]
    public void Bfloat16ModelTracksTheFloat32Model()
    {
        using var fp32 = TinyModels.Create();
        using var bf16 = TinyModels.Create(dtype: ScalarType.BFloat16);
        Assert.All(bf16.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        using var a = TinyModels.Logits(fp32, Sequence);
        using var b = TinyModels.Logits(bf16, Sequence);
        Assert.Equal(ScalarType.Float32, b.dtype); // logits are always fp32
        var error = ((a - b).norm() / a.norm()).item<float>();
        Assert.InRange(error, 1e-6f, 3e-2f); // close, and not secretly fp32
    }

    private sealed class FloatComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => MathF.Abs(x - y) <= tolerance;
        public int GetHashCode(float obj) => 0;
    }
}
