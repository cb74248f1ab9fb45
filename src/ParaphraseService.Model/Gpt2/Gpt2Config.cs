using System.Text.Json.Serialization;
using ParaphraseService.Model.Core;

namespace ParaphraseService.Model.Gpt2;

/// <summary>GPT-2 hyperparameters, read straight from a Hugging Face <c>config.json</c> (GPT2Config).</summary>
public sealed record Gpt2Config : ICausalLMConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "gpt2";
    [JsonPropertyName("vocab_size"), JsonRequired] public int VocabSize { get; init; }
    [JsonPropertyName("n_positions"), JsonRequired] public int MaxPositions { get; init; }
    [JsonPropertyName("n_embd"), JsonRequired] public int HiddenSize { get; init; }
    [JsonPropertyName("n_layer"), JsonRequired] public int LayerCount { get; init; }
    [JsonPropertyName("n_head"), JsonRequired] public int HeadCount { get; init; }
    /// <summary>MLP width; null means 4 x n_embd.</summary>
    [JsonPropertyName("n_inner")] public int? InnerSize { get; init; }
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "gelu_new";
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-5;
    /// <summary>Divide attention scores by sqrt(head_dim) (GPT-2 does; true by default).</summary>
    [JsonPropertyName("scale_attn_weights")] public bool ScaleAttnWeights { get; init; } = true;
    /// <summary>Also divide layer i's scores by i + 1 (some GPT-2 descendants; false by default).</summary>
    [JsonPropertyName("scale_attn_by_inverse_layer_idx")] public bool ScaleAttnByInverseLayerIdx { get; init; }
    [JsonPropertyName("add_cross_attention")] public bool AddCrossAttention { get; init; }
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; init; } = 50256;
    /// <summary>config.json's eos_token_id: one id, a list (generation stops at any), or null (none).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(EosTokenIdsConverter))]
    public IReadOnlyList<int> EosTokenIds { get => _eosTokenIds; init => _eosTokenIds = new TokenIds(value); }
    private readonly TokenIds _eosTokenIds = new([50256]);
    [JsonIgnore] public int EosTokenId { get => EosTokenIds.Count > 0 ? EosTokenIds[0] : BosTokenId; init => EosTokenIds = [value]; }
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; } = true;
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    [JsonIgnore] public int HeadDim => HiddenSize / HeadCount;
    [JsonIgnore] public int EffectiveInnerSize => InnerSize ?? 4 * HiddenSize;

    /// <summary>The published GPT-2 (124M) configuration (openai-community/gpt2).</summary>
    public static Gpt2Config Gpt2Small { get; } = new()
    {
        VocabSize = 50257, MaxPositions = 1024, HiddenSize = 768, LayerCount = 12, HeadCount = 12,
    };

    public ICausalLMConfig WithLayerCount(int count) => this with { LayerCount = count };

    public void Validate(string source = "config")
    {
        var problems = new List<string>();
        if (ModelType != "gpt2")
            problems.Add($"model_type is '{ModelType}', not 'gpt2'");
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
        if (InnerSize is { } inner)
        {
            if (inner <= 0) problems.Add("n_inner must be positive");
            ConfigLimits.AtMost(problems, "n_inner", inner, ConfigLimits.MaxInnerSize);
        }
        if (ActivationFunction != "gelu_new")
            problems.Add($"activation_function '{ActivationFunction}' is not supported (GPT-2 uses 'gelu_new')");
        if (AddCrossAttention)
            problems.Add("add_cross_attention is true: encoder-decoder GPT-2 is not supported");
        if (!TieWordEmbeddings)
            problems.Add("tie_word_embeddings is false: only GPT-2's tied lm_head (the token embedding) is supported");
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: invalid GPT-2 config: {string.Join("; ", problems)}.");
    }
}
