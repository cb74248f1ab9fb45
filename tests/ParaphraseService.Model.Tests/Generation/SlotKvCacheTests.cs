using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Kernels;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Generation;

/// <summary>The slot cache's CPU copy of a step's keys and values against LibTorch's index_put_ (its path elsewhere).</summary>
public class SlotKvCacheTests
{
    [Fact]
    public void TheCpuCopyWritesWhatIndexPutWrites()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var fast = new SlotKvCache(layerCount: 1, slots: 3, capacity: 12);
        using var reference = new SlotKvCache(layerCount: 1, slots: 3, capacity: 12);
        var generator = new Generator(5, CPU);
        // (rows, tokens): rows fed in an order other than the slots', a rollback, then every slot one token each.
        (int[] Rows, int Tokens, (int Slot, int Length)? RollBack)[] steps =
        [
            ([2, 0], 3, null), ([0], 2, (0, 4)), ([1, 2, 0], 1, null), ([2], 4, (2, 5)), ([0, 1, 2], 1, null),
        ];
        foreach (var (rows, tokens, rollBack) in steps)
        {
            // (B, H, T, D) as the models hand them over: heads-first views of (B, T, H, D) activations; D = 5, no vector width.
            var keys = randn([rows.Length, tokens, 2, 5], generator: generator).permute(0, 2, 1, 3);
            var values = randn([rows.Length, tokens, 2, 5], generator: generator).permute(0, 2, 1, 3);
            fast.BeginStep(rows, tokens);
            reference.BeginStep(rows, tokens);
            var (fastKeys, fastValues) = ((IKvCache)fast).Layer(0).Append(keys, values);
            (Tensor Keys, Tensor Values) expected;
            using (CpuKernels.Suppress())
                expected = ((IKvCache)reference).Layer(0).Append(keys, values);
            Assert.Equal(expected.Keys.shape, fastKeys.shape);
            Assert.True(expected.Keys.eq(fastKeys).all().item<bool>(), $"keys after feeding {string.Join(",", rows)}");
            Assert.True(expected.Values.eq(fastValues).all().item<bool>(), $"values after feeding {string.Join(",", rows)}");
            fast.Advance(tokens);
            reference.Advance(tokens);
            if (rollBack is var (slot, length))
            {
                fast.Truncate(slot, length);
                reference.Truncate(slot, length);
            }
        }
        Assert.Equal(reference.Lengths, fast.Lengths);
    }
}
