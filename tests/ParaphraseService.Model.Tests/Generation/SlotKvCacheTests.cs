using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Kernels;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Generation;

/// <summary>The slot cache's CPU copy of a step's keys and values against LibTorch's index_put_ (its path elsewhere).</summary>
public class SlotKvCacheTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)] // a cache that keeps bfloat16: rounded as index_put_ rounds
    public void TheCpuCopyWritesWhatIndexPutWrites(bool bfloat16)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        ScalarType? storage = bfloat16 ? ScalarType.BFloat16 : null;
        using var fast = new SlotKvCache(layerCount: 1, slots: 3, capacity: 12, storage);
        using var reference = new SlotKvCache(layerCount: 1, slots: 3, capacity: 12, storage);
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
            Assert.Equal(storage ?? ScalarType.Float32, fastKeys.dtype);
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

    [Fact]
    public void RowsInConsecutiveSlotsReadTheirOwnKeysAndValues()
    {
        // Consecutive slots (here 1 and 2, then 2 alone) read a view of the cache, other sets (0 and 2) a gathered copy:
        // either way each row reads what was written to its own slot.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new SlotKvCache(layerCount: 1, slots: 3, capacity: 8);
        var layer = ((IKvCache)cache).Layer(0);
        var generator = new Generator(9, CPU);
        Tensor Fresh(int rows, int tokens) => randn([rows, 2, tokens, 4], generator: generator);
        static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

        cache.BeginStep([1, 2], 2);
        var (k12, v12) = (Fresh(2, 2), Fresh(2, 2));
        var (keys, values) = layer.Append(k12, v12);
        Assert.True(Same(keys, k12) && Same(values, v12));
        cache.Advance(2);

        cache.BeginStep([2], 1);
        var (k2, v2) = (Fresh(1, 1), Fresh(1, 1));
        (keys, values) = layer.Append(k2, v2);
        Assert.Equal([1L, 2, 3, 4], keys.shape);
        Assert.True(Same(keys.narrow(2, 0, 2), k12.narrow(0, 1, 1)) && Same(keys.narrow(2, 2, 1), k2));
        Assert.True(Same(values.narrow(2, 0, 2), v12.narrow(0, 1, 1)) && Same(values.narrow(2, 2, 1), v2));
        cache.Advance(1);

        cache.BeginStep([0, 2], 1);
        var (k02, v02) = (Fresh(2, 1), Fresh(2, 1));
        (keys, values) = layer.Append(k02, v02);
        Assert.Equal([2L, 2, 4, 4], keys.shape);
        Assert.True(Same(keys[0].narrow(1, 0, 1), k02[0]) && Same(keys[1].narrow(1, 3, 1), k02[1]));
        Assert.True(Same(keys[1].narrow(1, 0, 2), k12[1]) && Same(values[1].narrow(1, 2, 1), v2[0]));
    }
}
