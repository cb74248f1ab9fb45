namespace ParaphraseService.Model.Core;

/// <summary>
/// Upper bounds on config.json sizes, far above any model this service runs (GPT-J-6B: 28 layers of 4096, 50400 tokens,
/// 2048 positions; the largest published dense models stay under 128 layers of 32768), so that a typo or a hostile file
/// is refused by name instead of building, or failing to allocate, a model no checkpoint could fill. They also keep the
/// products the model code forms (4 * n_embd, vocab * n_embd, positions * rotary_dim) well inside their types.
/// </summary>
internal static class ConfigLimits
{
    public const int MaxLayers = 1024;
    public const int MaxHiddenSize = 1 << 16;
    public const int MaxInnerSize = 1 << 18;
    public const int MaxVocabSize = 1 << 20;
    /// <summary>
    /// 1,048,576 positions: 512 times GPT-J-6B's context. A context this long would need a KV cache of hundreds of GB
    /// anyway, and GPT-2/GPT-Neo checkpoints hold a learned vector per position.
    /// </summary>
    public const int MaxPositions = 1 << 20;

    /// <summary>Adds a problem naming <paramref name="field"/> when <paramref name="value"/> is over <paramref name="max"/>.</summary>
    public static void AtMost(List<string> problems, string field, long value, long max)
    {
        if (value > max)
            problems.Add($"{field} ({value}) is over {max}, far more than any model this service runs");
    }
}
