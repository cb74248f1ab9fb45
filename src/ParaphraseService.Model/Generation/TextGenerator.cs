using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Autoregressive generation for a batch of prompts: one prefill of the left-padded batch, then one cached decode
/// step per token for every unfinished row. Each row samples with its own seeded generator.
/// </summary>
public sealed class TextGenerator(CausalLM model, Gpt2Tokenizer tokenizer)
{
    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default,
        LoraAdapter? adapter = null) =>
        Generate([promptIds], [options], cancellationToken, adapter is null ? null : [adapter])[0];

    public GenerationResult Generate(string prompt, GenerationOptions options, CancellationToken cancellationToken = default, LoraAdapter? adapter = null) =>
        Generate(tokenizer.Encode(prompt), options, cancellationToken, adapter);

    /// <summary>Generates for every prompt at once; row i uses options[i] and adapters[i] (null: the base model).</summary>
    public IReadOnlyList<GenerationResult> Generate(
        IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<GenerationOptions> options, CancellationToken cancellationToken = default,
        IReadOnlyList<LoraAdapter?>? adapters = null)
    {
        if (prompts.Count == 0 || prompts.Count != options.Count || (adapters is not null && adapters.Count != prompts.Count))
            throw new ArgumentException("Give one set of options (and of adapters, if any) per prompt, and at least one prompt.");
        var config = model.Config;
        var promptLength = prompts.Max(p => p.Count);
        var maxNew = options.Max(o => o.MaxNewTokens);
        foreach (var prompt in prompts)
            SequenceState.Validate(prompt, maxNew, config, config.MaxPositions);

        var rows = prompts.Select((p, i) => new SequenceState(p, options[i], config, Math.Min(config.VocabSize, tokenizer.VocabularySize), tokenizer)).ToArray();
        return Run(rows, promptLength, maxNew, adapters, cancellationToken);
    }

    private IReadOnlyList<GenerationResult> Run(SequenceState[] rows, int promptLength, int maxNew, IReadOnlyList<LoraAdapter?>? adapters, CancellationToken cancellationToken)
    {
        var device = model.parameters().First().device;
        var batch = rows.Length;
        using var noGrad = no_grad();
        using var cache = new KvCache(model.Config.LayerCount, promptLength + maxNew);

        var (next, attentionMask) = LeftPadded.Batch(rows.Select(r => r.Prompt).ToList(), model.Config.EosTokenId, device);
        for (var step = 0; step < maxNew && rows.Any(r => !r.Finished); step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var logits = model.forward(new CausalLMInput(next, attentionMask, Cache: cache, LastTokenOnly: true, Adapters: adapters))[.., 0]; // (B, V)
            var chosen = new long[batch, 1];
            for (var r = 0; r < batch; r++)
            {
                chosen[r, 0] = model.Config.EosTokenId; // finished rows idle on a token nobody reads
                if (!rows[r].Finished)
                    chosen[r, 0] = rows[r].Accept(rows[r].Choose(logits[r]), tokenizer);
            }
            next.Dispose();
            next = tensor(chosen, device: device).DetachFromDisposeScope();
            var grown = cat([attentionMask, ones(batch, 1, ScalarType.Int64, device)], 1).DetachFromDisposeScope();
            attentionMask.Dispose();
            attentionMask = grown;
        }
        next.Dispose();
        attentionMask.Dispose();
        return rows.Select(r => r.Result(tokenizer)).ToArray();
    }
}
