namespace ParaphraseService.Model.Core;

/// <summary>
/// What callers need to know of any model family's config.json, whatever the family names its keys (GPT-J's
/// <c>n_embd</c>, GPT-Neo's <c>hidden_size</c>): sizes for batching and KV caches, the context length, special tokens.
/// </summary>
public interface ICausalLMConfig
{
    /// <summary>config.json's <c>model_type</c>: "gptj", "gpt_neo", "gpt2".</summary>
    string ModelType { get; }

    int VocabSize { get; }

    /// <summary>The longest sequence the model has positions for.</summary>
    int MaxPositions { get; }

    int HiddenSize { get; }

    int LayerCount { get; }

    /// <summary>Attention heads of every layer (each layer caches keys and values as (B, HeadCount, S, HeadDim)).</summary>
    int HeadCount { get; }

    int HeadDim { get; }

    int BosTokenId { get; }

    /// <summary>
    /// The end-of-sequence id where one is needed (padding a batch): the first of <see cref="EosTokenIds"/>, else
    /// bos_token_id (GPT-2's vocabularies use one token for both).
    /// </summary>
    int EosTokenId { get; }

    /// <summary>Ids that end a sequence (config.json's eos_token_id: one, a list, or none when it is null).</summary>
    IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>The checkpoint's stored dtype as config.json names it ("float16"), if it says.</summary>
    string? TorchDtype { get; }

    /// <summary>Checks the values the model math depends on; throws <see cref="InvalidDataException"/> listing every problem.</summary>
    void Validate(string source = "config");

    /// <summary>
    /// The same config with <paramref name="count"/> layers, for a model whose tensor names and shapes stand for the
    /// full one's (every layer holds the same tensors); where a family has several kinds of layer, which kind each is may change.
    /// </summary>
    ICausalLMConfig WithLayerCount(int count);
}
