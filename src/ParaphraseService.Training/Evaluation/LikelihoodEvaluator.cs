using ParaphraseService.Model.Core;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Evaluation;

/// <summary>A model to evaluate under a name: a base, the same base with an adapter, an int8 copy of it, ...</summary>
public sealed record EvalModel(string Name, CausalLM Model, LoraAdapter? Adapter = null);

/// <summary>
/// Mean negative log-likelihood (and perplexity) of the scored tokens of <see cref="EvalSequence"/>s under one or more
/// models, all on the same batches. With several models, each is also compared with the first on every scored
/// position: how often their most likely token agrees, the mean KL divergence of the first's distribution from
/// theirs, and the relative L2 error of their logits.
/// </summary>
public static class LikelihoodEvaluator
{
    /// <summary>Logit elements (rows × vocabulary) one batch may produce per model when the batch size is automatic.</summary>
    public const long AutoBatchLogits = 1L << 25;

    /// <summary>Sequences per batch so a batch's logits stay near <see cref="AutoBatchLogits"/> elements (at least 1).</summary>
    public static int AutoBatchSize(int longestSequence, int vocabularySize) =>
        (int)Math.Clamp(AutoBatchLogits / Math.Max(1L, (long)longestSequence * vocabularySize), 1, 256);

    /// <param name="padId">The id right-padding fills in (masked out; the model's eos is fine).</param>
    /// <param name="progress">Called after each batch with the scored tokens done so far.</param>
    /// <exception cref="ArgumentException">
    /// No model or sequence, nothing to score, models of different vocabularies, a token outside a model's vocabulary or
    /// a sequence longer than a model's context.
    /// </exception>
    public static LikelihoodReport Evaluate(IReadOnlyList<EvalModel> models, IReadOnlyList<EvalSequence> sequences, int padId,
        int batchSize, Action<long>? progress = null, CancellationToken cancellationToken = default)
    {
        Validate(models, sequences, padId, batchSize);
        var totals = models.Select(_ => new Totals()).ToArray();
        long done = 0;
        // Longest first: batches of similar lengths pad little, and a too-large batch fails at once rather than at the end.
        foreach (var batch in sequences.OrderByDescending(s => s.Ids.Count).Chunk(batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var device = models[0].Model.parameters().First().device;
            var (ids, mask, positions, labels) = Collate(batch, padId, device);
            Tensor? referenceLogits = null, referenceLogp = null, referenceTop = null;
            for (var m = 0; m < models.Count; m++)
            {
                var model = models[m];
                var input = new CausalLMInput(ids.to(model.Model.parameters().First().device), mask.to(model.Model.parameters().First().device),
                    Adapters: model.Adapter is null ? null : Enumerable.Repeat(model.Adapter, batch.Length).ToList());
                // position t predicts token t + 1: the logits of the scored positions only, (N, V)
                var logits = model.Model.forward(input).to(CPU)[.., ..^1].reshape(-1, model.Model.Config.VocabSize).index_select(0, positions);
                var logp = logits.log_softmax(-1);
                totals[m].Nll -= logp.gather(1, labels.unsqueeze(1)).to(ScalarType.Float64).sum().item<double>();
                var top = logits.argmax(-1);
                if (m == 0)
                {
                    (referenceLogits, referenceLogp, referenceTop) = (logits, logp, top);
                    continue;
                }
                // KL(p_ref || p_m) = Σ p_ref (log p_ref − log p_m) per position
                totals[m].Kl += (referenceLogp!.exp() * (referenceLogp - logp)).sum(-1).to(ScalarType.Float64).sum().item<double>();
                totals[m].Agreements += top.eq(referenceTop!).sum().item<long>();
                totals[m].ErrorSquares += (logits - referenceLogits!).square().to(ScalarType.Float64).sum().item<double>();
                totals[m].ReferenceSquares += referenceLogits!.square().to(ScalarType.Float64).sum().item<double>();
            }
            done += batch.Sum(s => s.ScoredCount);
            progress?.Invoke(done);
        }

        var tokens = sequences.Sum(s => (long)s.ScoredCount);
        var results = models.Select((m, i) => new ModelLikelihood(m.Name, totals[i].Nll / tokens, tokens)).ToList();
        var comparisons = models.Skip(1).Select((m, j) =>
        {
            var t = totals[j + 1];
            return new LikelihoodComparison(models[0].Name, m.Name,
                PerplexityIncrease: Math.Exp(results[j + 1].MeanNll - results[0].MeanNll) - 1,
                Top1Agreement: t.Agreements / (double)tokens,
                MeanKl: t.Kl / tokens,
                LogitsRelativeError: t.ReferenceSquares > 0 ? Math.Sqrt(t.ErrorSquares / t.ReferenceSquares) : 0);
        }).ToList();
        return new LikelihoodReport(results, comparisons, sequences.Count, tokens);
    }

    private static void Validate(IReadOnlyList<EvalModel> models, IReadOnlyList<EvalSequence> sequences, int padId, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(sequences);
        if (models.Count == 0)
            throw new ArgumentException("Give at least one model to evaluate.", nameof(models));
        if (sequences.Count == 0 || sequences.All(s => s.ScoredCount == 0))
            throw new ArgumentException("There is no token to score.", nameof(sequences));
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var vocabulary = models[0].Model.Config.VocabSize;
        if (models.FirstOrDefault(m => m.Model.Config.VocabSize != vocabulary) is { } other)
            throw new ArgumentException($"Models compared must share a vocabulary: {models[0].Name} has {vocabulary} ids, {other.Name} {other.Model.Config.VocabSize}.");
        if (padId < 0 || padId >= vocabulary)
            throw new ArgumentOutOfRangeException(nameof(padId), padId, $"The padding id must be a token of the vocabulary (0-{vocabulary - 1}).");
        var context = models.Min(m => m.Model.Config.MaxPositions);
        for (var i = 0; i < sequences.Count; i++)
        {
            var s = sequences[i];
            if (s.Ids.Count > context)
                throw new ArgumentException($"Sequence {i + 1} has {s.Ids.Count} tokens; the model's context holds {context}.");
            foreach (var id in s.Ids)
                if (id < 0 || id >= vocabulary)
                    throw new ArgumentException($"Sequence {i + 1} holds token id {id}, outside the model's vocabulary of {vocabulary} ids (a tokenizer that does not belong to this model?).");
        }
    }

    /// <summary>
    /// Right-padded ids and mask (B, T); the flat indices of the scored positions in (B, T − 1); the token each predicts.
    /// </summary>
    private static (Tensor Ids, Tensor Mask, Tensor Positions, Tensor Labels) Collate(IReadOnlyList<EvalSequence> batch, int padId, Device device)
    {
        var length = batch.Max(s => s.Ids.Count);
        var ids = new long[batch.Count, length];
        var mask = new long[batch.Count, length];
        var positions = new List<long>();
        var labels = new List<long>();
        for (var b = 0; b < batch.Count; b++)
        {
            var s = batch[b];
            for (var t = 0; t < length; t++)
            {
                ids[b, t] = t < s.Ids.Count ? s.Ids[t] : padId;
                mask[b, t] = t < s.Ids.Count ? 1 : 0;
            }
            for (var t = s.FirstScored; t < s.Ids.Count; t++)
            {
                positions.Add(b * (long)(length - 1) + t - 1);
                labels.Add(s.Ids[t]);
            }
        }
        return (tensor(ids, device: device), tensor(mask, device: device), tensor(positions.ToArray()), tensor(labels.ToArray()));
    }

    private sealed class Totals
    {
        public double Nll;
        public double Kl;
        public long Agreements;
        public double ErrorSquares;
        public double ReferenceSquares;
    }
}

/// <summary>One model's figures over the scored tokens.</summary>
/// <param name="MeanNll">Mean negative log-likelihood per scored token, in nats.</param>
public sealed record ModelLikelihood(string Name, double MeanNll, long Tokens)
{
    public double Perplexity => Math.Exp(MeanNll);
}

/// <summary>A model against the reference (the first model evaluated), on the same scored positions.</summary>
/// <param name="PerplexityIncrease">Other's perplexity over the reference's, minus 1 (0.01: 1% higher).</param>
/// <param name="Top1Agreement">Share of positions where both rank the same token first.</param>
/// <param name="MeanKl">Mean KL(reference ‖ other) per position, in nats.</param>
/// <param name="LogitsRelativeError">‖other − reference‖ / ‖reference‖ over all logits of the scored positions.</param>
public sealed record LikelihoodComparison(string Reference, string Other, double PerplexityIncrease, double Top1Agreement, double MeanKl, double LogitsRelativeError);

/// <param name="Models">In the order given; the first is the reference of <paramref name="Comparisons"/>.</param>
public sealed record LikelihoodReport(IReadOnlyList<ModelLikelihood> Models, IReadOnlyList<LikelihoodComparison> Comparisons, int Sequences, long ScoredTokens);
