namespace ParaphraseService.Model.Generation;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): a small seeded generator of our own, because <see cref="Random"/>'s
/// seeded sequence may change between .NET versions, and a stored seed must give the same split or the same sampled text for good; and all 64 bits of a seed count (LibTorch's CPU generator keeps only the low 32).
/// </summary>
public sealed class SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>A generator for one purpose (<paramref name="stream"/>) of one user seed.</summary>
    public static SplitMix64 For(int seed, uint stream) => new(((ulong)(uint)seed << 32) | stream);

    public ulong Next()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, <paramref name="bound"/>), without modulo bias.</summary>
    public int Next(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        var b = (ulong)bound;
        var threshold = (0UL - b) % b; // 2^64 mod b: draws below it would favour small values
        while (true)
        {
            var r = Next();
            if (r >= threshold)
                return (int)(r % b);
        }
    }

    /// <summary>Fisher-Yates: the first <paramref name="count"/> items become a uniform random sample in random order.</summary>
    public void Shuffle<T>(T[] items, int count)
    {
        for (var i = 0; i < count && i < items.Length - 1; i++)
        {
            var j = i + Next(items.Length - i);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
