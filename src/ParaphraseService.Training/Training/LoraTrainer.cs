using System.Diagnostics;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Training;

/// <summary>
/// Trains a LoRA adapter on the frozen base a model already holds (no copy of its weights): the adapter is attached
/// to the model's registry, every batch row uses it, the loss covers the target tokens only, and AdamW updates A and B
/// with gradient clipping and a warmup-then-decay learning rate. Deterministic for a seed on one device.
/// The base's Linears must be differentiable: full precision, or int8 with the dequantize kernel.
/// </summary>
public sealed class LoraTrainer(CausalLM model, AdapterRegistry registry, Gpt2Tokenizer tokenizer, PromptTemplate template)
{
    private readonly Device _device = model.parameters().First().device;

    /// <summary>Trains a new adapter on <paramref name="train"/>; it stays resident in the registry under <paramref name="name"/>.</summary>
    public LoraAdapter Train(string name, IReadOnlyList<ParaphrasePair> train, LoraTrainingOptions options,
        Action<TrainingStep>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (train.Count == 0)
            throw new ArgumentException("There is nothing to train on.");
        var targets = registry.Targets
            .Where(t => options.TargetModules is null || options.TargetModules.Any(m => t.Key == m || t.Key.EndsWith("." + m, StringComparison.Ordinal)))
            .ToDictionary(t => t.Key, t => t.Value);
        if (targets.Count == 0)
            throw new ArgumentException($"No module of the model matches target modules {string.Join(", ", options.TargetModules ?? [])}.");

        torch.random.manual_seed(options.Seed); // dropout masks
        var adapter = LoraAdapter.CreateNew(name, options.Rank, options.Alpha, options.UseRsLora, options.Dropout, targets, _device, options.Seed);
        registry.Load(adapter);
        var examples = train.Select(p => TrainingBatches.Tokenize(p, template, tokenizer, options.MaxSequenceLength)).ToList();
        var stepsPerEpoch = (int)Math.Ceiling(examples.Count / (double)(options.BatchSize * options.GradientAccumulation));
        var totalSteps = Math.Min(options.MaxSteps ?? int.MaxValue, stepsPerEpoch * options.Epochs);

        var parameters = adapter.Trainable();
        using var optimizer = optim.AdamW(parameters, options.LearningRate, weight_decay: options.WeightDecay);
        var order = new Random((int)options.Seed);
        var step = 0;
        model.train();
        try
        {
            for (var epoch = 1; step < totalSteps; epoch++)
            {
                var shuffled = examples.OrderBy(_ => order.Next()).ToList();
                foreach (var group in shuffled.Chunk(options.BatchSize * options.GradientAccumulation))
                {
                    if (step >= totalSteps) break;
                    cancellationToken.ThrowIfCancellationRequested();
                    var clock = Stopwatch.StartNew();
                    var learningRate = LearningRateAt(step, totalSteps, options);
                    foreach (var g in optimizer.ParamGroups) g.LearningRate = learningRate;
                    optimizer.zero_grad();
                    double loss = 0;
                    var tokens = 0;
                    foreach (var batch in group.Chunk(options.BatchSize))
                    {
                        using var scope = NewDisposeScope();
                        var (value, count) = Loss(batch, adapter);
                        // Each micro-batch weighs by its share of the step's target tokens.
                        (value * (batch.Length / (double)group.Length)).backward();
                        loss += value.item<float>() * batch.Length / group.Length;
                        tokens += batch.Sum(e => e.Length);
                    }
                    nn.utils.clip_grad_norm_(parameters, options.MaxGradNorm);
                    optimizer.step();
                    step++;
                    progress?.Invoke(new TrainingStep(step, totalSteps, epoch, loss, learningRate, tokens / clock.Elapsed.TotalSeconds));
                }
            }
        }
        finally
        {
            model.eval();
            foreach (var p in parameters) p.requires_grad = false;
        }
        return adapter;
    }

    /// <summary>Mean loss over the target tokens of <paramref name="pairs"/>, with the adapter or the base alone.</summary>
    public double EvalLoss(IReadOnlyList<ParaphrasePair> pairs, LoraAdapter? adapter, int maxLength = 128, int batchSize = 8)
    {
        if (pairs.Count == 0) return double.NaN;
        using var noGrad = no_grad();
        double total = 0;
        foreach (var batch in pairs.Select(p => TrainingBatches.Tokenize(p, template, tokenizer, maxLength)).Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            total += Loss(batch, adapter).Loss.item<float>() * batch.Length;
        }
        return total / pairs.Count;
    }

    private (Tensor Loss, long Tokens) Loss(IReadOnlyList<TokenizedExample> batch, LoraAdapter? adapter)
    {
        var (ids, mask, labels) = TrainingBatches.Collate(batch, model.Config.EosTokenId, _device);
        var logits = model.forward(new CausalLMInput(ids, mask, Adapters: adapter is null ? null : Enumerable.Repeat(adapter, batch.Count).ToList()));
        // shift: position t predicts token t + 1
        var predicted = logits[.., ..^1].reshape(-1, logits.shape[2]);
        var wanted = labels[.., 1..].reshape(-1);
        var loss = nn.functional.cross_entropy(predicted, wanted, ignore_index: TrainingBatches.Ignore);
        return (loss, wanted.ne(TrainingBatches.Ignore).sum().item<long>());
    }

    private static double LearningRateAt(int step, int total, LoraTrainingOptions o)
    {
        if (step < o.WarmupSteps) return o.LearningRate * (step + 1) / o.WarmupSteps;
        var progress = (step - o.WarmupSteps) / (double)Math.Max(1, total - o.WarmupSteps);
        return o.Schedule == LearningRateSchedule.Cosine
            ? o.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress))
            : o.LearningRate * (1 - progress);
    }
}
