using System.Diagnostics;
using System.Runtime.ExceptionServices;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Generation for a batch of prompts, run to completion on the calling thread: the same continuous batcher the service
/// schedules (one shared prefill per prompt, then decode steps for every unfinished row, speculative where
/// <paramref name="speculation"/> allows), so a prompt generates here exactly what it generates in the service. Each
/// row samples with its own seeded generator.
/// </summary>
public sealed class TextGenerator(CausalLM model, Gpt2Tokenizer tokenizer, SpeculationOptions? speculation = null)
{
    // What its decode steps cost and what drafts yielded, learned over every call (each call has its own batcher).
    private readonly MeasuredStepCost _stepCost = new();
    private readonly DraftAcceptance _acceptance = new();

    /// <summary>Decode work of the last <see cref="Generate(IReadOnlyList{IReadOnlyList{int}}, IReadOnlyList{GenerationOptions}, CancellationToken, IReadOnlyList{LoraAdapter?})"/>.</summary>
    public SpeculationStats? LastStats { get; private set; }

    /// <summary>
    /// How long the last call took to its first tokens (the prompts' forward and one token each): the part of a request
    /// that decoding, speculative or not, does not touch.
    /// </summary>
    public TimeSpan LastTimeToFirstToken { get; private set; }

    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default,
        LoraAdapter? adapter = null) =>
        Generate([promptIds], [options], cancellationToken, adapter is null ? null : [adapter])[0];

    public GenerationResult Generate(string prompt, GenerationOptions options, CancellationToken cancellationToken = default, LoraAdapter? adapter = null) =>
        Generate(tokenizer.Encode(prompt), options, cancellationToken, adapter);

    /// <summary>Generates for every prompt at once; row i uses options[i] and adapters[i] (null: the base model).</summary>
    /// <exception cref="SamplingException">A row's token could not be chosen (e.g. its logits are not finite).</exception>
    public IReadOnlyList<GenerationResult> Generate(
        IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<GenerationOptions> options, CancellationToken cancellationToken = default,
        IReadOnlyList<LoraAdapter?>? adapters = null)
    {
        if (prompts.Count == 0 || prompts.Count != options.Count || (adapters is not null && adapters.Count != prompts.Count))
            throw new ArgumentException("Give one set of options (and of adapters, if any) per prompt, and at least one prompt.");
        var config = model.Config;
        for (var i = 0; i < prompts.Count; i++)
            SequenceState.Validate(prompts[i], options[i].MaxNewTokens, config, config.MaxPositions);
        var capacity = prompts.Select((p, i) => p.Count + options[i].MaxNewTokens).Max();

        var clock = Stopwatch.StartNew();
        using var batcher = new ContinuousBatcher(model, tokenizer, prompts.Count, capacity, speculation, _stepCost, _acceptance);
        var slots = prompts.Select((p, i) => batcher.Admit(p, options[i], adapters?[i])).ToArray();
        var results = new Dictionary<int, GenerationResult>();
        LastTimeToFirstToken = TimeSpan.Zero;
        while (results.Count < prompts.Count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var update in batcher.Step().Where(u => u.Finished))
            {
                if (update.Error is { } error)
                    ExceptionDispatchInfo.Throw(error);
                results[update.Slot] = update.Result!;
            }
            // The first step prefills every prompt and samples its first token.
            if (LastTimeToFirstToken == TimeSpan.Zero)
                LastTimeToFirstToken = clock.Elapsed;
        }
        LastStats = batcher.Stats;
        return slots.Select(s => results[s]).ToArray();
    }
}
