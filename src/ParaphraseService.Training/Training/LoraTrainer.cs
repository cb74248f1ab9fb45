using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Training;

/// <summary>
/// Trains a LoRA adapter start to finish on the frozen base a model already holds (no copy of its weights), with a
/// <see cref="LoraTrainingSession"/>, and measures losses. For step-by-step control (interleaving with serving,
/// checkpoints), use the session directly.
/// </summary>
public sealed class LoraTrainer(CausalLM model, AdapterRegistry registry, Gpt2Tokenizer tokenizer, PromptTemplate template)
{
    /// <summary>Trains a new adapter on <paramref name="train"/>; it stays resident in the registry under <paramref name="name"/>.</summary>
    public LoraAdapter Train(string name, IReadOnlyList<ParaphrasePair> train, LoraTrainingOptions options,
        Action<TrainingStep>? progress = null, CancellationToken cancellationToken = default)
    {
        using var session = new LoraTrainingSession(model, registry, tokenizer, template, name, train, options);
        while (!session.IsComplete)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var step = session.RunStep();
            progress?.Invoke(step);
        }
        var adapter = session.TakeAdapter();
        registry.Load(adapter);
        return adapter;
    }

    /// <summary>Mean loss over the target tokens of <paramref name="pairs"/>, with the adapter or the base alone.</summary>
    public double EvalLoss(IReadOnlyList<ParaphrasePair> pairs, LoraAdapter? adapter, int maxLength = 128, int batchSize = 8)
    {
        if (pairs.Count == 0) return double.NaN;
        double total = 0;
        foreach (var batch in pairs.Chunk(batchSize))
            total += EvalLossOf(batch, adapter, maxLength) * batch.Length;
        return total / pairs.Count;
    }

    /// <summary>Mean target-token loss of one batch of pairs.</summary>
    public double EvalLossOf(IReadOnlyList<ParaphrasePair> batch, LoraAdapter? adapter, int maxLength = 128)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var examples = batch.Select(p => TrainingBatches.Tokenize(p, template, tokenizer, maxLength)).ToList();
        return LoraTrainingSession.Loss(model, examples, adapter).item<float>();
    }
}
