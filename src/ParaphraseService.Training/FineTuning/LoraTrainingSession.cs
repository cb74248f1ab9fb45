using System.Diagnostics;
using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Training.FineTuning;

/// <summary>
/// One LoRA fine-tune, run a micro-batch at a time so its owner can interleave it with other work on the same model
/// (the service's scheduler runs decode steps in between). The adapter is attached to the frozen base the model
/// already holds, outside the registry's resident set; the loss covers the target tokens only; AdamW updates A and B
/// with gradient clipping and a warmup-then-decay learning rate.
/// <para>
/// Deterministic for a seed, and resumable: the example order of each epoch and the dropout masks of each step follow
/// from the seed and the step number alone, so a run resumed from a checkpoint (adapter, optimizer state, step) takes
/// the same steps as one never interrupted.
/// </para>
/// The base's Linears must pass gradients: full precision, or int8 that keeps its matrix (see Int8Options).
/// </summary>
public sealed class LoraTrainingSession : IDisposable
{
    private const string AdapterFile = "adapter.safetensors", OptimizerFile = "optimizer.bin", StateFile = "state.json";

    private readonly CausalLM _model;
    private readonly AdapterRegistry _registry;
    private readonly LoraTrainingOptions _options;
    private readonly List<TokenizedExample> _examples;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly AdamW _optimizer;
    private readonly Device _device;
    private LoraAdapter? _adapter;
    private int[]? _order;
    private int _orderEpoch = -1;
    private int _micro;
    private double _stepLoss;
    private int _stepTokens;
    private readonly Stopwatch _stepClock = new();

    /// <param name="resumeFrom">A checkpoint folder written by <see cref="SaveCheckpoint"/> for the same data and options.</param>
    public LoraTrainingSession(CausalLM model, AdapterRegistry registry, Gpt2Tokenizer tokenizer, PromptTemplate template,
        string adapterName, IReadOnlyList<ParaphrasePair> train, LoraTrainingOptions options, string? resumeFrom = null)
    {
        options.Validate();
        if (train.Count == 0)
            throw new ArgumentException("There is nothing to train on.");
        (_model, _registry, _options) = (model, registry, options);
        _device = model.parameters().First().device;
        if (options.TargetModules is { } names && LoraTargets.Problem(names, registry.Target) is { } targetProblem)
            throw new ArgumentException($"Target modules: {targetProblem}.");
        var all = options.TargetModules is null || LoraTargets.IsAllLinear(options.TargetModules);
        var targets = registry.Targets
            .Where(t => all || options.TargetModules!.Any(m => PeftTargetModules.NameMatches(m, t.Key)))
            .ToDictionary(t => t.Key, t => t.Value);

        _examples = train.Select((p, i) =>
        {
            try
            {
                return TrainingBatches.Tokenize(p, template, tokenizer, options.MaxSequenceLength);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Pair {i + 1}: {e.Message}", e);
            }
        }).ToList();
        StepsPerEpoch = (int)Math.Ceiling(_examples.Count / (double)(options.BatchSize * options.GradientAccumulation));
        // In long: a huge epoch count must not wrap around to a negative step count.
        TotalSteps = (int)Math.Min(options.MaxSteps ?? int.MaxValue, Math.Min(int.MaxValue, (long)StepsPerEpoch * options.Epochs));

        _adapter = LoraAdapter.CreateNew(adapterName, options.Rank, options.Alpha, options.UseRsLora, options.Dropout, targets, _device, options.Seed);
        try
        {
            _parameters = _adapter.Trainable();
            _optimizer = optim.AdamW(_parameters, options.LearningRate, weight_decay: options.WeightDecay);
            if (resumeFrom is not null)
                Restore(resumeFrom);
            registry.AttachTraining(_adapter);
        }
        catch
        {
            _optimizer?.Dispose();
            _adapter.Dispose();
            throw;
        }
    }

    public LoraAdapter Adapter => _adapter ?? throw new ObjectDisposedException(nameof(LoraTrainingSession));

    /// <summary>Optimizer steps taken so far.</summary>
    public int Step { get; private set; }

    public int TotalSteps { get; }

    public int StepsPerEpoch { get; }

    /// <summary>The epoch (from 1) the next step belongs to.</summary>
    public int Epoch => Step / StepsPerEpoch + 1;

    public bool IsComplete => Step >= TotalSteps;

    /// <summary>
    /// Runs the next micro-batch: forward, backward, and, when it completes the step's gradient accumulation, the
    /// optimizer step. Returns that step when one was taken, else null.
    /// </summary>
    public TrainingStep? RunMicroBatch()
    {
        if (IsComplete)
            throw new InvalidOperationException("The session has taken all its steps.");
        var group = GroupOf(Step);
        // Passes of at most MaxExamplesPerPass examples; the loss is weighted by target tokens over the whole step, so
        // how the step is cut changes nothing but how long one pass holds the model.
        var batches = group.Chunk(Math.Min(_options.BatchSize, _options.MaxExamplesPerPass ?? int.MaxValue)).ToList();
        var stepTokens = group.Sum(e => e.Target.Count);
        if (_micro == 0)
        {
            _stepClock.Restart();
            (_stepLoss, _stepTokens) = (0, 0);
            _optimizer.zero_grad();
        }
        else
        {
            _stepClock.Start();
        }
        var batch = batches[_micro];
        _model.train();
        try
        {
            // Dropout masks depend on (seed, step, micro-batch) only, so a resumed run draws the same ones.
            random.manual_seed(_options.Seed * 1_000_003 + Step * 1_009L + _micro);
            using var scope = NewDisposeScope();
            // The step's loss: the mean over all its target tokens, whichever pass they are in.
            var loss = Loss(_model, batch, Adapter, _options.GradientCheckpointing, nn.Reduction.Sum) / stepTokens;
            loss.backward();
            _stepLoss += loss.item<float>();
            _stepTokens += batch.Sum(e => e.Length);
        }
        finally
        {
            _model.eval();
        }
        _micro++;
        if (_micro < batches.Count)
        {
            _stepClock.Stop();
            return null;
        }

        var learningRate = LearningRateAt(Step, TotalSteps, _options);
        foreach (var g in _optimizer.ParamGroups) g.LearningRate = learningRate;
        nn.utils.clip_grad_norm_(_parameters, _options.MaxGradNorm);
        _optimizer.step();
        _micro = 0;
        var epoch = Epoch;
        Step++;
        _stepClock.Stop();
        return new TrainingStep(Step, TotalSteps, epoch, _stepLoss, learningRate, _stepTokens / Math.Max(1e-9, _stepClock.Elapsed.TotalSeconds));
    }

    /// <summary>Runs micro-batches until the next optimizer step is taken.</summary>
    public TrainingStep RunStep()
    {
        while (true)
            if (RunMicroBatch() is { } step)
                return step;
    }

    /// <summary>
    /// Writes the adapter, the optimizer state and the step to <paramref name="folder"/>, which appears complete or not
    /// at all. Only between optimizer steps (gradients half accumulated are not saved).
    /// </summary>
    /// <param name="addFiles">Writes the caller's own files into the checkpoint's staging folder.</param>
    public void SaveCheckpoint(string folder, Action<string>? addFiles = null)
    {
        if (_micro != 0)
            throw new InvalidOperationException("A checkpoint is taken between optimizer steps, not in the middle of one.");
        AtomicFiles.PublishFolder(folder, staging =>
        {
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (module, (a, b)) in Adapter.Matrices)
            {
                tensors[module + ".lora_A"] = a;
                tensors[module + ".lora_B"] = b;
            }
            SafetensorsWriter.Write(Path.Combine(staging, AdapterFile), tensors);
            using (var stream = File.Create(Path.Combine(staging, OptimizerFile)))
            using (var writer = new BinaryWriter(stream))
                _optimizer.save_state_dict(writer);
            addFiles?.Invoke(staging);
            // Written last: a folder with state.json is a complete checkpoint.
            File.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(new CheckpointState(Step, Adapter.Name, Adapter.Rank)));
        });
    }

    /// <summary>The step a checkpoint folder was taken at, or null when it is not a complete checkpoint.</summary>
    public static int? CheckpointStep(string folder)
    {
        var state = Path.Combine(folder, StateFile);
        if (!File.Exists(state)) return null;
        try
        {
            return JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(state))?.Step;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void Restore(string folder)
    {
        var state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(Path.Combine(folder, StateFile)))
            ?? throw new InvalidDataException($"{folder}: empty checkpoint state.");
        if (state.Rank != Adapter.Rank || state.Step > TotalSteps)
            throw new InvalidDataException($"{folder}: the checkpoint (rank {state.Rank}, step {state.Step}) does not belong to this run (rank {Adapter.Rank}, {TotalSteps} steps).");
        using var reader = new SafetensorsReader(Path.Combine(folder, AdapterFile));
        using (no_grad())
        {
            foreach (var (module, (a, b)) in Adapter.Matrices)
            {
                using var savedA = reader.Read(module + ".lora_A");
                using var savedB = reader.Read(module + ".lora_B");
                a.copy_(savedA);
                b.copy_(savedB);
            }
        }
        using (var stream = File.OpenRead(Path.Combine(folder, OptimizerFile)))
        using (var binary = new BinaryReader(stream))
            _optimizer.load_state_dict(binary);
        Step = state.Step;
    }

    /// <summary>The examples of optimizer step <paramref name="step"/>: the epoch's seeded permutation, cut in groups.</summary>
    private IReadOnlyList<TokenizedExample> GroupOf(int step)
    {
        var epoch = step / StepsPerEpoch;
        if (_orderEpoch != epoch)
        {
            _order = Enumerable.Range(0, _examples.Count).ToArray();
            new Random(unchecked((int)_options.Seed * 7919 + epoch)).Shuffle(_order);
            _orderEpoch = epoch;
        }
        var size = _options.BatchSize * _options.GradientAccumulation;
        var start = step % StepsPerEpoch * size;
        return _order!.Skip(start).Take(size).Select(i => _examples[i]).ToList();
    }

    /// <summary>Mean loss over the target tokens of <paramref name="batch"/> (with <paramref name="adapter"/> on every row, or the base alone).</summary>
    /// <summary>Cross-entropy over the target tokens of <paramref name="batch"/>: their mean, or with <paramref name="reduction"/> Sum their sum.</summary>
    internal static Tensor Loss(CausalLM model, IReadOnlyList<TokenizedExample> batch, LoraAdapter? adapter, bool gradientCheckpointing = false,
        nn.Reduction reduction = nn.Reduction.Mean)
    {
        var device = model.parameters().First().device;
        var (ids, mask, labels) = TrainingBatches.Collate(batch, model.Config.EosTokenId, device);
        var logits = model.forward(new CausalLMInput(ids, mask, Adapters: adapter is null ? null : Enumerable.Repeat(adapter, batch.Count).ToList(),
            GradientCheckpointing: gradientCheckpointing));
        // shift: position t predicts token t + 1
        var predicted = logits[.., ..^1].reshape(-1, logits.shape[2]);
        var wanted = labels[.., 1..].reshape(-1);
        return nn.functional.cross_entropy(predicted, wanted, ignore_index: TrainingBatches.Ignore, reduction: reduction);
    }

    private static double LearningRateAt(int step, int total, LoraTrainingOptions o)
    {
        if (step < o.WarmupSteps) return o.LearningRate * (step + 1) / o.WarmupSteps;
        var progress = (step - o.WarmupSteps) / (double)Math.Max(1, total - o.WarmupSteps);
        return o.Schedule == LearningRateSchedule.Cosine
            ? o.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress))
            : o.LearningRate * (1 - progress);
    }

    /// <summary>
    /// Hands the trained adapter over: detached from training and frozen; the caller owns it (e.g. loads it into the
    /// registry to serve it, or saves and disposes it).
    /// </summary>
    public LoraAdapter TakeAdapter()
    {
        var adapter = Adapter;
        _registry.DetachTraining(adapter);
        foreach (var p in _parameters) p.requires_grad = false;
        _adapter = null;
        return adapter;
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        if (_adapter is null) return;
        _registry.DetachTraining(_adapter);
        _adapter.Dispose();
        _adapter = null;
    }

    private sealed record CheckpointState(int Step, string Adapter, int Rank);
}
