using System.Text.Json;
using System.Text.Json.Serialization;
using ParaphraseService.Model.Core;

namespace ParaphraseService.Model.GptJ;

/// <summary>GPT-J hyperparameters, read straight from a Hugging Face <c>config.json</c>.</summary>
public sealed record GptJConfig : ICausalLMConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "gptj";
    [JsonPropertyName("vocab_size"), JsonRequired] public int VocabSize { get; init; }
    [JsonPropertyName("n_positions"), JsonRequired] public int MaxPositions { get; init; }
    [JsonPropertyName("n_embd"), JsonRequired] public int HiddenSize { get; init; }
    [JsonPropertyName("n_layer"), JsonRequired] public int LayerCount { get; init; }
    [JsonPropertyName("n_head"), JsonRequired] public int HeadCount { get; init; }
    /// <summary>Leading dims of each head that get rotary embeddings; null means the whole head.</summary>
    [JsonPropertyName("rotary_dim")] public int? RotaryDim { get; init; }
    /// <summary>MLP width; null means 4 x n_embd.</summary>
    [JsonPropertyName("n_inner")] public int? InnerSize { get; init; }
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "gelu_new";
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-5;
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; init; } = 50256;
    /// <summary>config.json's eos_token_id: one id, a list (generation stops at any), or null (none).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(EosTokenIdsConverter))]
    public IReadOnlyList<int> EosTokenIds { get => _eosTokenIds; init => _eosTokenIds = new TokenIds(value); }
    private readonly TokenIds _eosTokenIds = new([50256]);
    [JsonIgnore] public int EosTokenId { get => EosTokenIds.Count > 0 ? EosTokenIds[0] : BosTokenId; init => EosTokenIds = [value]; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    [JsonIgnore] public int HeadDim => HiddenSize / HeadCount;
    [JsonIgnore] public int EffectiveRotaryDim => RotaryDim ?? HeadDim;
    [JsonIgnore] public int EffectiveInnerSize => InnerSize ?? 4 * HiddenSize;

    /// <summary>The published GPT-J-6B configuration (EleutherAI/gpt-j-6b).</summary>
    public static GptJConfig GptJ6B { get; } = new()
    {
        VocabSize = 50400, MaxPositions = 2048, HiddenSize = 4096, LayerCount = 28, HeadCount = 16, RotaryDim = 64,
    };

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    /// <summary>Reads and validates a <c>config.json</c>; every problem is reported with the file's path.</summary>
    public static GptJConfig Load(string path)
    {
        var text = ConfigFile.ReadText(path);
        GptJConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<GptJConfig>(text);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid GPT-J config: {e.Message}", e);
        }
        if (config is null)
            throw new InvalidDataException($"{path}: not a valid GPT-J config: the file holds null.");
        config.Validate(path);
        return config;
    }

    public ICausalLMConfig WithLayerCount(int count) => this with { LayerCount = count };

    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, s_json));

    /// <summary>Checks the values the model math depends on.</summary>
    public void Validate(string source = "config")
    {
        var problems = new List<string>();
        if (ModelType != "gptj")
            problems.Add($"model_type is '{ModelType}' but only 'gptj' is supported");
        if (VocabSize <= 0) problems.Add("vocab_size must be positive");
        if (MaxPositions <= 0) problems.Add("n_positions must be positive");
        ConfigLimits.AtMost(problems, "vocab_size", VocabSize, ConfigLimits.MaxVocabSize);
        ConfigLimits.AtMost(problems, "n_positions", MaxPositions, ConfigLimits.MaxPositions);
        ConfigLimits.AtMost(problems, "n_embd", HiddenSize, ConfigLimits.MaxHiddenSize);
        ConfigLimits.AtMost(problems, "n_layer", LayerCount, ConfigLimits.MaxLayers);
        if (HiddenSize <= 0 || LayerCount <= 0 || HeadCount <= 0)
            problems.Add("n_embd, n_layer and n_head must be positive");
        else if (HiddenSize % HeadCount != 0)
            problems.Add($"n_embd ({HiddenSize}) is not divisible by n_head ({HeadCount})");
        else if (EffectiveRotaryDim <= 0 || EffectiveRotaryDim > HeadDim || EffectiveRotaryDim % 2 != 0)
            problems.Add($"rotary_dim ({EffectiveRotaryDim}) must be even and at most the head size ({HeadDim})");
        if (InnerSize is { } inner)
        {
            if (inner <= 0) problems.Add("n_inner must be positive");
            ConfigLimits.AtMost(problems, "n_inner", inner, ConfigLimits.MaxInnerSize);
        }
        if (ActivationFunction != "gelu_new")
            problems.Add($"activation_function '{ActivationFunction}' is not supported (GPT-J uses 'gelu_new')");
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: invalid GPT-J config: {string.Join("; ", problems)}.");
    }
}
