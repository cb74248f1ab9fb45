using System.Text.Json;
using System.Text.Json.Serialization;
using ParaphraseService.Model.Core;

namespace ParaphraseService.Model.GptNeo;

/// <summary>GPT-Neo hyperparameters, read straight from a Hugging Face <c>config.json</c> (GPTNeoConfig).</summary>
public sealed record GptNeoConfig : ICausalLMConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "gpt_neo";
    [JsonPropertyName("vocab_size"), JsonRequired] public int VocabSize { get; init; }
    [JsonPropertyName("max_position_embeddings"), JsonRequired] public int MaxPositions { get; init; }
    [JsonPropertyName("hidden_size"), JsonRequired] public int HiddenSize { get; init; }
    [JsonPropertyName("num_layers"), JsonRequired] public int LayerCount { get; init; }
    [JsonPropertyName("num_heads"), JsonRequired] public int HeadCount { get; init; }

    /// <summary>Groups of layer kinds and how often each repeats: <c>[[["global", "local"], 16]]</c> is 32 alternating layers.</summary>
    [JsonPropertyName("attention_types"), JsonRequired, JsonConverter(typeof(AttentionTypesConverter))]
    public IReadOnlyList<AttentionTypeGroup> AttentionTypes { get; init; } = [];

    /// <summary>How many positions a local layer looks back, its own included.</summary>
    [JsonPropertyName("window_size")] public int WindowSize { get; init; } = 256;
    /// <summary>MLP width; null means 4 x hidden_size.</summary>
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; init; }
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "gelu_new";
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-5;
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; init; } = 50256;
    /// <summary>config.json's eos_token_id: one id, a list (generation stops at any), or null (none).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(EosTokenIdsConverter))]
    public IReadOnlyList<int> EosTokenIds { get => _eosTokenIds; init => _eosTokenIds = new TokenIds(value); }
    private readonly TokenIds _eosTokenIds = new([50256]);
    [JsonIgnore] public int EosTokenId { get => EosTokenIds.Count > 0 ? EosTokenIds[0] : BosTokenId; init => EosTokenIds = [value]; }
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; } = true;
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    [JsonIgnore] public int HeadDim => HiddenSize / HeadCount;
    [JsonIgnore] public int EffectiveInnerSize => IntermediateSize ?? 4 * HiddenSize;

    /// <summary>Each layer's kind, "global" or "local" (HF's <c>config.attention_layers</c>).</summary>
    [JsonIgnore]
    public IReadOnlyList<string> AttentionLayers =>
        // for item in attention_types: for _ in range(item[1]): attentions.extend(item[0])
        AttentionTypes.SelectMany(g => Enumerable.Repeat(g.Types, Math.Max(0, g.Repeat)).SelectMany(t => t)).ToList();

    /// <summary>The published GPT-Neo 2.7B configuration (EleutherAI/gpt-neo-2.7B).</summary>
    public static GptNeoConfig GptNeo27B { get; } = new()
    {
        VocabSize = 50257, MaxPositions = 2048, HiddenSize = 2560, LayerCount = 32, HeadCount = 20, WindowSize = 256,
        AttentionTypes = [new(["global", "local"], 16)],
    };

    // Local and global layers hold the same tensors; only the mask differs.
    public ICausalLMConfig WithLayerCount(int count) => this with { LayerCount = count, AttentionTypes = [new(["global"], count)] };

    public void Validate(string source = "config")
    {
        var problems = new List<string>();
        if (ModelType != "gpt_neo")
            problems.Add($"model_type is '{ModelType}', not 'gpt_neo'");
        if (VocabSize <= 0) problems.Add("vocab_size must be positive");
        if (MaxPositions <= 0) problems.Add("max_position_embeddings must be positive");
        ConfigLimits.AtMost(problems, "vocab_size", VocabSize, ConfigLimits.MaxVocabSize);
        ConfigLimits.AtMost(problems, "max_position_embeddings", MaxPositions, ConfigLimits.MaxPositions);
        ConfigLimits.AtMost(problems, "hidden_size", HiddenSize, ConfigLimits.MaxHiddenSize);
        ConfigLimits.AtMost(problems, "num_layers", LayerCount, ConfigLimits.MaxLayers);
        if (HiddenSize <= 0 || LayerCount <= 0 || HeadCount <= 0)
            problems.Add("hidden_size, num_layers and num_heads must be positive");
        else if (HiddenSize % HeadCount != 0)
            problems.Add($"hidden_size ({HiddenSize}) is not divisible by num_heads ({HeadCount})");
        // Counted, not expanded: [[["global", "local"], 2147483647]] would be a list of 4.3 billion names.
        var described = AttentionTypes.Aggregate(Int128.Zero, (sum, g) => sum + (Int128)g.Types.Count * Math.Max(0, g.Repeat));
        if (described != LayerCount)
            problems.Add($"attention_types describe {described} layers but num_layers is {LayerCount}");
        var unknown = AttentionTypes.Where(g => g.Repeat > 0).SelectMany(g => g.Types).Where(t => t is not ("global" or "local")).Distinct().ToList();
        if (unknown.Count > 0)
            problems.Add($"attention_types has kinds other than 'global' and 'local': {string.Join(", ", unknown.Select(u => $"'{u}'"))}");
        if (WindowSize <= 0) problems.Add("window_size must be positive");
        if (IntermediateSize is { } inner)
        {
            if (inner <= 0) problems.Add("intermediate_size must be positive");
            ConfigLimits.AtMost(problems, "intermediate_size", inner, ConfigLimits.MaxInnerSize);
        }
        if (ActivationFunction != "gelu_new")
            problems.Add($"activation_function '{ActivationFunction}' is not supported (GPT-Neo uses 'gelu_new')");
        if (!TieWordEmbeddings)
            problems.Add("tie_word_embeddings is false: only GPT-Neo's tied lm_head (the token embedding) is supported");
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: invalid GPT-Neo config: {string.Join("; ", problems)}.");
    }
}

/// <summary>One entry of <c>attention_types</c>: layer kinds repeated <paramref name="Repeat"/> times.</summary>
public sealed record AttentionTypeGroup(IReadOnlyList<string> Types, int Repeat);

/// <summary>Reads and writes <c>attention_types</c> as GPT-Neo configs spell it: <c>[[["global", "local"], 16]]</c>.</summary>
internal sealed class AttentionTypesConverter : JsonConverter<IReadOnlyList<AttentionTypeGroup>>
{
    public override IReadOnlyList<AttentionTypeGroup> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var json = JsonDocument.ParseValue(ref reader);
        var groups = new List<AttentionTypeGroup>();
        if (json.RootElement.ValueKind != JsonValueKind.Array)
            throw new JsonException("attention_types must be a list like [[[\"global\", \"local\"], 16]].");
        foreach (var item in json.RootElement.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Array || item.GetArrayLength() != 2 || item[0].ValueKind != JsonValueKind.Array
                || item[1].ValueKind != JsonValueKind.Number || item[0].EnumerateArray().Any(t => t.ValueKind != JsonValueKind.String))
                throw new JsonException("each attention_types entry must be [[kinds...], repeat], like [[\"global\", \"local\"], 16].");
            groups.Add(new AttentionTypeGroup(item[0].EnumerateArray().Select(t => t.GetString()!).ToList(), item[1].GetInt32()));
        }
        return groups;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<AttentionTypeGroup> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var group in value)
        {
            writer.WriteStartArray();
            writer.WriteStartArray();
            foreach (var type in group.Types) writer.WriteStringValue(type);
            writer.WriteEndArray();
            writer.WriteNumberValue(group.Repeat);
            writer.WriteEndArray();
        }
        writer.WriteEndArray();
    }
}
