using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Core;

/// <summary>
/// The C# attention and rotary loops for fp32 inference on the CPU against the LibTorch ops they replace, which run
/// whenever a gradient is wanted: asking for one on q selects the reference path on the same numbers.
/// </summary>
public class CpuAttentionTests
{
    private static Tensor Reference(Tensor q, Tensor k, Tensor v, Tensor allowed, float[] divisors)
    {
        using var grad = enable_grad();
        var withGrad = q.detach().clone().requires_grad_(true);
        Assert.False(CpuAttention.Applies(withGrad, k, v));
        return MultiHeadAttention.Attend(withGrad, k, v, allowed, null, divisors).detach();
    }

    private static Tensor Fast(Tensor q, Tensor k, Tensor v, Tensor allowed, float[] divisors)
    {
        using var noGrad = no_grad();
        Assert.True(CpuAttention.Applies(q, k, v));
        return MultiHeadAttention.Attend(q, k, v, allowed, null, divisors);
    }

    public static TheoryData<int, int, int, int, float[]> Shapes => new()
    {
        { 1, 1, 1, 64, [8f] },         // a decode step, GPT-J's sqrt(head_dim)
        { 3, 5, 7, 16, [] },           // a few new tokens per row over a longer cache, GPT-Neo: no scaling
        { 2, 4, 4, 12, [3.4641f, 2f] },// GPT-2 with scale_attn_by_inverse_layer_idx: two divisors; D not a multiple of 8
        { 4, 1, 33, 256, [16f] },      // GPT-J-6B's head size
        { 2, 11, 43, 40, [6.3246f] },  // a prefill: runs of four keys, partly masked ones, a head size past a multiple of 32
    };

    [Theory, MemberData(nameof(Shapes))]
    public void MatchesTheLibTorchOpsWithPaddingAndACacheView(int batch, int t, int s, int d, float[] divisors)
    {
        using var scope = NewDisposeScope();
        const int heads = 3;
        var generator = new Generator(17, CPU);
        var q = randn([batch, t, heads, d], generator: generator).permute(0, 2, 1, 3); // (B, H, T, D) as the models build it
        // keys and values as a cache hands them out: the first S of a longer preallocated buffer
        var k = randn([batch, heads, s + 9, d], generator: generator).narrow(2, 0, s);
        var v = randn([batch, heads, s + 9, d], generator: generator).narrow(2, 0, s);
        // causal over the last T positions, and row 0 left-padded: its first two keys are masked everywhere
        var allowed = ones(t, s, ScalarType.Bool).tril(s - t).unsqueeze(0).unsqueeze(0).expand(batch, 1, t, s).clone();
        allowed[0, .., .., ..Math.Min(2, s)] = false;
        if (s <= 2) allowed[0] = false; // a query with nothing to attend to: the values' mean, not NaN

        var expected = Reference(q, k, v, allowed, divisors);
        var actual = Fast(q, k, v, allowed, divisors);

        Assert.Equal(expected.shape, actual.shape);
        Assert.False(actual.isnan().any().item<bool>());
        var error = (actual - expected).abs().max().item<float>();
        Assert.True(error < 1e-5, $"max |Δ| = {error}");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void BFloat16KeysAndValuesGiveTheBitsOfTheFp32NumbersTheyHold(int batch, int t, int s, int d, float[] divisors)
    {
        // What a cache keeping bfloat16 hands over: read and widened in the loop, they must give what fp32 copies of the
        // same (rounded) numbers give, bit for bit.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        const int heads = 3;
        var generator = new Generator(23, CPU);
        var q = randn([batch, t, heads, d], generator: generator).permute(0, 2, 1, 3);
        var k = randn([batch, heads, s + 9, d], generator: generator).to(ScalarType.BFloat16).narrow(2, 0, s);
        var v = randn([batch, heads, s + 9, d], generator: generator).to(ScalarType.BFloat16).narrow(2, 0, s);
        var allowed = ones(t, s, ScalarType.Bool).tril(s - t).unsqueeze(0).unsqueeze(0).expand(batch, 1, t, s).clone();
        allowed[0, .., .., ..Math.Min(2, s)] = false;

        Assert.True(CpuAttention.Applies(q, k, v));
        var actual = CpuAttention.Attend(q, k, v, allowed, divisors);
        var expected = CpuAttention.Attend(q, k.to(ScalarType.Float32), v.to(ScalarType.Float32), allowed, divisors);

        Assert.True(actual.eq(expected).all().item<bool>(), $"max |Δ| = {(actual - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void ACacheKeepingBFloat16AttendsToTheRoundedKeysAndValues()
    {
        // A prompt of five positions, then one decode step, through a cache that keeps bfloat16 and through an fp32 one fed
        // the same numbers rounded: the same context, bit for bit; and LibTorch's ops on the bfloat16 cache (the path off
        // the CPU loops) agree with the loop to 1e-5, in fp32.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(29, CPU);
        const int heads = 2, d = 24;
        Tensor Fresh(int t) => randn([1, t, heads, d], generator: generator).permute(0, 2, 1, 3);
        static Tensor Rounded(Tensor x) => x.to(ScalarType.BFloat16).to(ScalarType.Float32);
        var steps = new[] { (Q: Fresh(5), K: Fresh(5), V: Fresh(5)), (Q: Fresh(1), K: Fresh(1), V: Fresh(1)) };
        var caches = new[] { new KvCache(1, 6, ScalarType.BFloat16), new KvCache(1, 6), new KvCache(1, 6, ScalarType.BFloat16) };
        var past = 0;
        foreach (var (q, k, v) in steps)
        {
            var t = (int)q.size(2);
            var allowed = ones(t, past + t, ScalarType.Bool).tril(past).unsqueeze(0).unsqueeze(0);
            var kept = MultiHeadAttention.Attend(q, k, v, allowed, caches[0].Layer(0), 8f);
            var rounded = MultiHeadAttention.Attend(q, Rounded(k), Rounded(v), allowed, caches[1].Layer(0), 8f);
            Tensor libTorch;
            using (ParaphraseService.Model.Kernels.CpuKernels.Suppress())
                libTorch = MultiHeadAttention.Attend(q, k, v, allowed, caches[2].Layer(0), 8f);
            foreach (var cache in caches) cache.Advance(t);
            past += t;

            Assert.Equal(ScalarType.BFloat16, caches[0].Layer(0).Stored!.Value.Keys.dtype);
            Assert.True(kept.eq(rounded).all().item<bool>(), $"after {past} positions: max |Δ| = {(kept - rounded).abs().max().item<float>()}");
            Assert.Equal(ScalarType.Float32, libTorch.dtype);
            Assert.True((libTorch - kept).abs().max().item<float>() < 1e-5);
        }
        Assert.Equal(caches[1].Bytes / 2, caches[0].Bytes);
        foreach (var cache in caches) cache.Dispose();
    }

    [Fact]
    public void AnEmptyBatchGivesAnEmptyContext()
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = (zeros(0, 2, 1, 8), zeros(0, 2, 3, 8), zeros(0, 2, 3, 8));
        var context = Fast(q, k, v, ones([0, 1, 1, 3], ScalarType.Bool), []);
        Assert.Equal([0L, 1, 16], context.shape);
    }

    [Fact]
    public void RotaryLoopGivesTheSameBitsAsTheLibTorchOps()
    {
        using var scope = NewDisposeScope();
        using var rotary = new RotaryEmbedding(rotaryDim: 24, maxPositions: 300);
        var x = randn([3, 4, 5, 40], generator: new Generator(19, CPU)); // (B, T, H, D), rotary_dim < D
        var positions = randint(0, 300, [3, 4], generator: new Generator(20, CPU));
        var angles = rotary.Angles(positions);

        Tensor reference;
        using (enable_grad())
            reference = rotary.Apply(x.clone().requires_grad_(true), angles).detach();
        Tensor fast;
        using (no_grad())
            fast = rotary.Apply(x, angles);

        Assert.True(fast.eq(reference).all().item<bool>(), $"max |Δ| = {(fast - reference).abs().max().item<float>()}");
        var before = x.clone();
        using (no_grad())
            rotary.Apply(x, angles).Dispose();
        Assert.False(fast.eq(x).all().item<bool>()); // it rotates, and on a copy: the input is untouched
        Assert.True(x.eq(before).all().item<bool>());

        // handed over, the input itself is rotated, to the same bits
        Tensor overwritten;
        using (no_grad())
            overwritten = rotary.Apply(x, angles, overwrite: true);
        Assert.True(overwritten.eq(reference).all().item<bool>());
        Assert.True(x.eq(reference).all().item<bool>());
    }
}
