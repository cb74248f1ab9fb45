using ParaphraseService.Model.Core;
using ParaphraseService.Model.Kernels;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Core;

/// <summary>
/// The mask and positions built in one C# pass on the CPU against the LibTorch ops they replace (which run on other
/// devices and under <see cref="CpuKernels.Suppress"/>): prefill with and without left padding, a cached step, and a
/// slot cache step whose rows sit at their own positions.
/// </summary>
public class CausalMaskTests
{
    private sealed class PastOnly(int length) : IKvCache
    {
        public int Length => length;
        public ILayerKvCache Layer(int index) => throw new NotSupportedException();
        public void Advance(long count) { }
    }

    public static TheoryData<string, long[][], int, long[][]?> Cases => new()
    {
        { "prefill", [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], 0, null },
        { "prefill, left padded", [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]], 0, null },
        { "cached step", [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], 4, null },
        { "a row with nothing valid", [[0, 0, 0], [1, 1, 1]], 0, null },
        // Slot rows of lengths 2 and 5 feeding 3 tokens each: valid keys [0, length + 3), positions [length, length + 3).
        { "slot step, several tokens", [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]], 5, [[2, 3, 4], [5, 6, 7]] },
        { "slot step, one token", [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], 5, [[2], [5]] },
    };

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheLibTorchOps(string name, long[][] mask, int past, long[][]? positions)
    {
        using var scope = NewDisposeScope();
        var attention = tensor(mask.SelectMany(r => r).ToArray()).view(mask.Length, -1);
        var t = (int)attention.size(1) - past;
        var input = new CausalLMInput(zeros(mask.Length, t, ScalarType.Int64), attention,
            positions is null ? null : tensor(positions.SelectMany(r => r).ToArray()).view(mask.Length, -1), past > 0 ? new PastOnly(past) : null);

        var fast = new CausalMask(input, maxPositions: 64);
        CausalMask reference;
        using (CpuKernels.Suppress())
            reference = new CausalMask(input, maxPositions: 64);

        Assert.True(fast.Allowed.dtype == ScalarType.Bool, name);
        Assert.Equal(reference.Allowed.shape, fast.Allowed.shape);
        Assert.True(reference.Allowed.eq(fast.Allowed).all().item<bool>(), $"{name}: allowed differs");
        Assert.Equal(reference.Positions.shape, fast.Positions.shape);
        Assert.True(reference.Positions.eq(fast.Positions).all().item<bool>(), $"{name}: positions differ");
        Assert.True(reference.Local(2).eq(fast.Local(2)).all().item<bool>(), $"{name}: local window differs");
    }

    [Fact]
    public void RefusesPositionsPastTheContextAndMisshapedPositionIdsOnBothPaths()
    {
        using var scope = NewDisposeScope();
        var ids = zeros(1, 3, ScalarType.Int64);
        foreach (var suppressed in new[] { false, true })
        {
            using var libTorch = suppressed ? CpuKernels.Suppress() : null;
            Assert.Throws<ArgumentOutOfRangeException>(() => new CausalMask(new CausalLMInput(ids), maxPositions: 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => new CausalMask(new CausalLMInput(ids, ones(1, 3), tensor(new long[] { 0, 1, 2 }).view(1, 3)), maxPositions: 2));
            var wrong = Assert.Throws<ArgumentException>(() => new CausalMask(new CausalLMInput(ids, ones(1, 3), tensor(new long[] { 0, 1 }).view(1, 2)), maxPositions: 8));
            Assert.Contains("position_ids", wrong.Message);
        }
    }
}
