using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// Greedy paraphrases of pairs' sources, scored against their references (BLEU, self-BLEU, iBLEU), as a fine-tune
/// scores its held-out sample: the prompt from the template, generation stopped at its end marker.
/// </summary>
public static class GreedyParaphrases
{
    /// <param name="progress">Called after each batch with the pairs done so far.</param>
    public static (ParaphraseScores Scores, IReadOnlyList<ParaphraseExample> Examples) Score(CausalLM model, LoraAdapter? adapter, Gpt2Tokenizer tokenizer,
        PromptTemplate template, IReadOnlyList<ParaphrasePair> pairs, int maxNewTokens = 64, int batchSize = 8, Action<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var generator = new TextGenerator(model, tokenizer);
        var options = new GenerationOptions { Greedy = true, MaxNewTokens = maxNewTokens, StopSequences = [template.EndMarker] };
        options.Validate();
        var examples = new List<ParaphraseExample>(pairs.Count);
        foreach (var batch in pairs.Chunk(batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var prompts = batch.Select(p => (IReadOnlyList<int>)tokenizer.Encode(template.Render(p.Source))).ToList();
            var results = generator.Generate(prompts, prompts.Select(_ => options).ToList(), cancellationToken,
                adapter is null ? null : prompts.Select(_ => (LoraAdapter?)adapter).ToList());
            examples.AddRange(batch.Zip(results, (p, r) => new ParaphraseExample(p.Source, p.Target, template.Cut(r.Text) ?? "")));
            progress?.Invoke(examples.Count);
        }
        return (ParaphraseMetrics.Score(examples), examples);
    }
}
