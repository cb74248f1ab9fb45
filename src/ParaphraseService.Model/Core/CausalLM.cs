using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>
/// A causal language model this service can run, whatever its family (GPT-J, GPT-Neo, GPT-2): token ids in, fp32
/// logits (B, T, V) out, or (B, 1, V) for the last token only. Generation, batching, the service, LoRA and training
/// see only this class. Each family supplies its trunk (embeddings, blocks, final LayerNorm) and its head; the
/// adapter routing around a forward and the last-token slicing are here, once.
/// </summary>
public abstract class CausalLM : nn.Module<CausalLMInput, Tensor>, IAdaptableModel
{
    /// <param name="family">The family's descriptor (its LoRA targets, checkpoint conventions), supplied by the subclass.</param>
    protected CausalLM(string name, ModelFamily family, ICausalLMConfig config, LayerFactory layers) : base(name)
    {
        ArgumentNullException.ThrowIfNull(family);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layers);
        config.Validate();
        Family = family;
        Config = config;
        Lora = layers.Lora;
    }

    /// <summary>The architecture this model belongs to.</summary>
    public ModelFamily Family { get; }

    /// <summary>The family-neutral view of config.json (sizes, context, special tokens).</summary>
    public ICausalLMConfig Config { get; }

    /// <summary>config.json's <c>model_type</c>.</summary>
    public string ModelType => Config.ModelType;

    /// <summary>Routes adapters to rows when the model was built with LoRA support (<see cref="LayerFactory.Lora"/>), else null.</summary>
    public LoraRouting? Lora { get; }

    /// <summary>
    /// The dtype the KV caches of generation keep keys and values in (<see cref="Loading.ModelLoadOptions.KvCache"/>);
    /// null: the one the model computes them in.
    /// </summary>
    public ScalarType? KvCacheDtype { get; set; }

    /// <summary>What LoRA adapters for this model may target, as the family's checkpoints name the modules.</summary>
    public AdapterTarget AdapterTarget => Family.AdapterTarget(Config);

    public sealed override Tensor forward(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        if (input.Adapters is not null && Lora is null)
            throw new InvalidOperationException("This model was built without LoRA support; build it with LayerFactory.Lora to use adapters.");
        using var routing = Lora?.Use(input.Adapters);
        var hidden = Trunk(input);
        if (input.LastTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(input), input.LastTokens, "LastTokens must be 0 (every position) or more.");
        if (input.LastTokens > 0 && input.LastTokens < hidden.size(1))
            hidden = hidden[.., TensorIndex.Slice(-input.LastTokens)];
        // lm_logits = self.lm_head(hidden_states).to(torch.float32)
        return Head(hidden).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>The final hidden states (B, T, E) after the last LayerNorm; extends <see cref="CausalLMInput.Cache"/>.</summary>
    protected abstract Tensor Trunk(CausalLMInput input);

    /// <summary>The language-model head: hidden states (…, E) to logits (…, V) in any dtype.</summary>
    protected abstract Tensor Head(Tensor hidden);
}
