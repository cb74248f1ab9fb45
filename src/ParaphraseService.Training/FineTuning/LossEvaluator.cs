using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using static TorchSharp.torch;

namespace ParaphraseService.Training.FineTuning;

/// <summary>
/// The loss a model (with an adapter, or the base alone) has on the target tokens of paraphrase pairs, as training
/// computes it but without gradients: what a fine-tune's evaluation measures before, during and after training.
/// </summary>
public sealed class LossEvaluator(CausalLM model, Gpt2Tokenizer tokenizer, PromptTemplate template)
{
    /// <summary>Mean loss over the target tokens of <paramref name="pairs"/>, with the adapter or the base alone.</summary>
    /// <exception cref="ArgumentException">A pair does not fit <paramref name="maxLength"/> tokens (see <see cref="TrainingBatches.Tokenize"/>).</exception>
    public double EvalLoss(IReadOnlyList<ParaphrasePair> pairs, LoraAdapter? adapter, int maxLength = 128, int batchSize = 8)
    {
        if (pairs.Count == 0) return double.NaN;
        double total = 0;
        foreach (var batch in pairs.Chunk(batchSize))
            total += EvalLossOf(batch, adapter, maxLength) * batch.Length;
        return total / pairs.Count;
    }

    /// <summary>Mean target-token loss of one batch of pairs.</summary>
    /// <exception cref="ArgumentException">A pair does not fit <paramref name="maxLength"/> tokens.</exception>
    public double EvalLossOf(IReadOnlyList<ParaphrasePair> batch, LoraAdapter? adapter, int maxLength = 128)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var examples = batch.Select(p => TrainingBatches.Tokenize(p, template, tokenizer, maxLength)).ToList();
        return LoraTrainingSession.Loss(model, examples, adapter).item<float>();
    }
}
