using System.Text.RegularExpressions;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Gpt2;

/// <summary>GPT-2 with its lm_head tied to the token embedding; returns fp32 logits (B, T, V), or (B, 1, V) for the last token.</summary>
public sealed partial class Gpt2ForCausalLM : CausalLM
{
    private Gpt2Model transformer;
    private TiedLmHead lm_head;

    /// <param name="device">Where parameters are created; <c>meta</c> builds the shapes without allocating memory.</param>
    public Gpt2ForCausalLM(Gpt2Config config, ScalarType dtype, Device device) : this(config, new LayerFactory(dtype, device))
    {
    }

    /// <param name="layers">Dtype, device and weight storage (full precision or int8) of every layer.</param>
    public Gpt2ForCausalLM(Gpt2Config config, LayerFactory layers) : base(nameof(Gpt2ForCausalLM), Gpt2Family.Family, config, layers)
    {
        Config = config;
        transformer = new Gpt2Model(config, layers);
        lm_head = layers.TiedHead(transformer.TokenEmbedding);
        RegisterComponents();
    }

    public new Gpt2Config Config { get; }

    /// <summary>Whether a model key is the weight of one of Hugging Face's Conv1D layers, stored [in, out] in checkpoints.</summary>
    public static bool IsConv1DWeight(string key) => Conv1DWeight().IsMatch(key);

    [GeneratedRegex(@"^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")]
    private static partial Regex Conv1DWeight();

    protected override Tensor Trunk(CausalLMInput input) => transformer.call(input);

    protected override Tensor Head(Tensor hidden) => lm_head.call(hidden);
}
