using ParaphraseService.Model.GptJ;

namespace ParaphraseService.Model.Loading;

/// <summary>Named GPT-J shapes for synthetic checkpoints: the random-weight demo model, a 250M-parameter benchmark model, GPT-J-6B.</summary>
public static class CheckpointPresets
{
    public const string Demo = RandomDemoModel.SourceName;
    public const string Bench250M = "bench-250m";
    public const string GptJ6B = "gptj-6b";

    /// <summary>GPT-J's vocabulary and context with a 1024-wide, 12-layer trunk: 254M parameters.</summary>
    public static GptJConfig Bench250MConfig { get; } = new()
    {
        VocabSize = 50400, MaxPositions = 2048, HiddenSize = 1024, LayerCount = 12, HeadCount = 16, RotaryDim = 64,
    };

    /// <summary>Every preset by name, in the order they are listed to users.</summary>
    public static IReadOnlyDictionary<string, GptJConfig> All { get; } = new OrderedDictionary<string, GptJConfig>(StringComparer.Ordinal)
    {
        [Demo] = RandomDemoModel.Config,
        [Bench250M] = Bench250MConfig,
        [GptJ6B] = GptJConfig.GptJ6B,
    };

    /// <exception cref="ArgumentException">No preset has that name; the message lists those that do.</exception>
    public static GptJConfig Get(string name) =>
        All.TryGetValue(name.Trim().ToLowerInvariant(), out var config)
            ? config
            : throw new ArgumentException($"Unknown preset '{name}': use {string.Join(", ", All.Keys)}.");
}
