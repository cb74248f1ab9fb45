using System.Text.Json;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Evaluation;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.FineTuning;

/// <summary>
/// A whole fine-tune: the base's eval loss, training with periodic evaluation, early stopping and checkpoints, the
/// final eval loss, and paraphrases generated for a sample of held-out sources scored by BLEU, self-BLEU and iBLEU.
/// <see cref="Run"/> yields after every bounded piece of work (one training micro-batch, one eval batch, one generation
/// batch), so the caller decides what runs in between: the service's scheduler runs decode steps, the CLI nothing.
/// A run given a checkpoint folder resumes from the newest complete checkpoint in it.
/// </summary>
public sealed class FineTuneRun : IDisposable
{
    private const string ProgressFile = "progress.json";

    // The best eval loss starts at infinity.
    private static readonly JsonSerializerOptions s_json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private readonly CausalLM _model;
    private readonly Gpt2Tokenizer _tokenizer;
    private readonly PromptTemplate _template;
    private readonly PreparedDataset _data;
    private readonly FineTuneSettings _settings;
    private readonly string? _checkpoints;
    private readonly LoraTrainingSession _session;
    private readonly LossEvaluator _evaluator;
    private RunProgress _progress = new();

    public FineTuneRun(CausalLM model, AdapterRegistry registry, Gpt2Tokenizer tokenizer, PromptTemplate template,
        string adapterName, PreparedDataset data, FineTuneSettings settings, string? checkpointFolder = null)
    {
        settings.Validate();
        (_model, _tokenizer, _template, _data, _settings, _checkpoints) = (model, tokenizer, template, data, settings, checkpointFolder);
        var resume = checkpointFolder is null ? null : LatestCheckpoint(checkpointFolder);
        _session = new LoraTrainingSession(model, registry, tokenizer, template, adapterName, data.Train, settings.Training, resume);
        if (resume is not null && File.Exists(Path.Combine(resume, ProgressFile)))
            _progress = JsonSerializer.Deserialize<RunProgress>(File.ReadAllText(Path.Combine(resume, ProgressFile)), s_json) ?? new();
        _evaluator = new LossEvaluator(model, tokenizer, template);
        ResumedFromStep = resume is null ? null : _session.Step;
    }

    /// <summary>The step the run resumed from, or null for a fresh start.</summary>
    public int? ResumedFromStep { get; }

    public int Step => _session.Step;

    public int TotalSteps => _session.TotalSteps;

    /// <summary>Metrics so far: train_loss, eval_loss, eval_loss_base, bleu, self_bleu, ibleu, stopped_early.</summary>
    public IReadOnlyDictionary<string, double> Metrics => _progress.Metrics;

    /// <summary>Eval losses taken during training, by step.</summary>
    public IReadOnlyList<(int Step, double Loss)> EvalHistory => _progress.Evals.Select(e => (e.Step, e.Loss)).ToList();

    /// <summary>
    /// The work, one bounded piece per iteration. Events: <see cref="FineTuneEvent.StepTaken"/>,
    /// <see cref="FineTuneEvent.Evaluated"/>, <see cref="FineTuneEvent.CheckpointSaved"/>, <see cref="FineTuneEvent.Scored"/>,
    /// and <see cref="FineTuneEvent.Working"/> when a piece finished nothing worth reporting.
    /// </summary>
    public IEnumerable<FineTuneEvent> Run()
    {
        var evaluate = _data.Eval.Count > 0;
        if (evaluate && !_progress.Metrics.ContainsKey("eval_loss_base"))
        {
            foreach (var loss in EvalLoss(adapter: null))
                if (loss is null) yield return new FineTuneEvent.Working();
                else _progress.Metrics["eval_loss_base"] = loss.Value;
            yield return new FineTuneEvent.Evaluated(0, _progress.Metrics["eval_loss_base"], Base: true);
        }

        while (!_session.IsComplete && !_progress.StoppedEarly)
        {
            if (_session.RunMicroBatch() is not { } step)
            {
                yield return new FineTuneEvent.Working();
                continue;
            }
            if (double.IsFinite(step.Loss)) _progress.Metrics["train_loss"] = step.Loss;
            yield return new FineTuneEvent.StepTaken(step);

            if (evaluate && _settings.EvalEverySteps > 0 && step.Step % _settings.EvalEverySteps == 0 && !_session.IsComplete)
            {
                double? evalLoss = null;
                foreach (var loss in EvalLoss(_session.Adapter))
                    if (loss is null) yield return new FineTuneEvent.Working();
                    else evalLoss = loss;
                _progress.Record(step.Step, evalLoss!.Value, _settings.EarlyStoppingPatience);
                yield return new FineTuneEvent.Evaluated(step.Step, evalLoss.Value, Base: false);
            }
            if (_checkpoints is not null && _settings.CheckpointEverySteps > 0 && step.Step % _settings.CheckpointEverySteps == 0 && !_session.IsComplete)
                yield return new FineTuneEvent.CheckpointSaved(step.Step, SaveCheckpoint());
        }
        if (_progress.StoppedEarly) _progress.Metrics["stopped_early"] = 1;

        if (!evaluate) yield break;
        foreach (var loss in EvalLoss(_session.Adapter))
            if (loss is null) yield return new FineTuneEvent.Working();
            else _progress.Metrics["eval_loss"] = loss.Value;
        yield return new FineTuneEvent.Evaluated(_session.Step, _progress.Metrics["eval_loss"], Base: false);

        var sample = _data.Eval.Take(_settings.BleuSamples).ToList();
        if (sample.Count == 0) yield break;
        var candidates = new List<string>();
        var generator = new TextGenerator(_model, _tokenizer);
        var options = new GenerationOptions
        {
            Greedy = true, MaxNewTokens = _settings.BleuMaxNewTokens, StopSequences = [_template.EndMarker], Seed = _settings.Training.Seed,
        };
        foreach (var batch in sample.Chunk(_settings.EvalBatchSize))
        {
            var prompts = batch.Select(p => (IReadOnlyList<int>)_tokenizer.Encode(_template.Render(p.Source))).ToList();
            var results = generator.Generate(prompts, prompts.Select(_ => options).ToList(), adapters: prompts.Select(_ => (LoraAdapter?)_session.Adapter).ToList());
            candidates.AddRange(results.Select(r => r.Text.Trim()));
            yield return new FineTuneEvent.Working();
        }
        var scores = ParaphraseMetrics.Score(sample.Select(p => p.Source).ToList(), sample.Select(p => p.Target).ToList(), candidates);
        _progress.Metrics["bleu"] = scores.Bleu;
        _progress.Metrics["self_bleu"] = scores.SelfBleu;
        _progress.Metrics["ibleu"] = scores.IBleu;
        var examples = sample.Zip(candidates, (p, c) => new ParaphraseExample(p.Source, p.Target, c)).Take(5).ToList();
        yield return new FineTuneEvent.Scored(scores, examples);
    }

    /// <summary>The trained adapter, detached from training; the caller owns it.</summary>
    public LoraAdapter TakeAdapter() => _session.TakeAdapter();

    /// <summary>Eval loss over at most <see cref="FineTuneSettings.MaxEvalPairs"/> held-out pairs: null after each batch, then the mean.</summary>
    private IEnumerable<double?> EvalLoss(LoraAdapter? adapter)
    {
        var pairs = _data.Eval.Take(_settings.MaxEvalPairs).ToList();
        double total = 0;
        foreach (var batch in pairs.Chunk(_settings.EvalBatchSize))
        {
            total += _evaluator.EvalLossOf(batch, adapter, _settings.Training.MaxSequenceLength) * batch.Length;
            yield return null;
        }
        yield return total / pairs.Count;
    }

    private string SaveCheckpoint()
    {
        var folder = Path.Combine(_checkpoints!, $"step-{_session.Step:D7}");
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        _session.SaveCheckpoint(folder, staging => File.WriteAllText(Path.Combine(staging, ProgressFile), JsonSerializer.Serialize(_progress, s_json)));
        // Only the newest checkpoint is kept: it is all a resume needs.
        foreach (var older in Directory.EnumerateDirectories(_checkpoints!, "step-*").Where(d => d != folder))
            Directory.Delete(older, recursive: true);
        return folder;
    }

    /// <summary>The newest complete checkpoint in <paramref name="folder"/>, or null.</summary>
    public static string? LatestCheckpoint(string folder) => Directory.Exists(folder)
        ? Directory.EnumerateDirectories(folder, "step-*")
            .Select(d => (Folder: d, Step: LoraTrainingSession.CheckpointStep(d)))
            .Where(c => c.Step is not null)
            .OrderByDescending(c => c.Step)
            .Select(c => c.Folder)
            .FirstOrDefault()
        : null;

    public void Dispose() => _session.Dispose();

    /// <summary>What a resumed run must know of the evaluations before its checkpoint.</summary>
    private sealed class RunProgress
    {
        public Dictionary<string, double> Metrics { get; set; } = [];
        public List<EvalPoint> Evals { get; set; } = [];
        public double BestEvalLoss { get; set; } = double.PositiveInfinity;
        public int EvalsWithoutImprovement { get; set; }
        public bool StoppedEarly { get; set; }

        public void Record(int step, double loss, int? patience)
        {
            Evals.Add(new EvalPoint(step, loss));
            // Better means by more than a relative 1e-4: steps too small to matter do not postpone the stop forever.
            if (Evals.Count == 1 || loss < BestEvalLoss - 1e-4 * Math.Abs(BestEvalLoss))
                (BestEvalLoss, EvalsWithoutImprovement) = (loss, 0);
            else if (patience is { } p && ++EvalsWithoutImprovement >= p)
                StoppedEarly = true;
        }
    }

    private sealed record EvalPoint(int Step, double Loss);
}

/// <summary>What a <see cref="FineTuneRun"/> reports as it goes.</summary>
public abstract record FineTuneEvent
{
    /// <summary>A piece of work finished with nothing to report (a micro-batch inside a step, an eval batch).</summary>
    public sealed record Working : FineTuneEvent;

    public sealed record StepTaken(TrainingStep Step) : FineTuneEvent;

    /// <param name="Base">The base model alone, before training.</param>
    public sealed record Evaluated(int Step, double EvalLoss, bool Base) : FineTuneEvent;

    public sealed record CheckpointSaved(int Step, string Folder) : FineTuneEvent;

    /// <param name="Examples">A few generated paraphrases next to their source and reference.</param>
    public sealed record Scored(ParaphraseScores Scores, IReadOnlyList<ParaphraseExample> Examples) : FineTuneEvent;
}

/// <summary>How a fine-tune is run around the trainer: evaluation, early stopping, checkpoints, scoring.</summary>
public sealed record FineTuneSettings
{
    public LoraTrainingOptions Training { get; init; } = new();

    /// <summary>Measure the eval loss every this many steps (0: only at the end).</summary>
    public int EvalEverySteps { get; init; }

    /// <summary>Stop when this many evaluations in a row did not improve the best eval loss (by more than a relative
    /// 1e-4); null never stops early. The adapter is the one of the last step taken.</summary>
    public int? EarlyStoppingPatience { get; init; }

    /// <summary>Save a checkpoint every this many steps (0: none).</summary>
    public int CheckpointEverySteps { get; init; } = 50;

    public int EvalBatchSize { get; init; } = 8;

    /// <summary>At most this many held-out pairs for the eval loss.</summary>
    public int MaxEvalPairs { get; init; } = 256;

    /// <summary>Held-out sources paraphrased (greedy) and scored with BLEU, self-BLEU and iBLEU.</summary>
    public int BleuSamples { get; init; } = 32;

    public int BleuMaxNewTokens { get; init; } = 64;

    /// <summary>Every value out of range, by field (the fine-tune request's camelCase names), the training options' included.</summary>
    public IReadOnlyList<(string Field, string Message)> Problems()
    {
        var problems = Training.Problems().ToList();
        void Check(bool ok, string field, string message)
        {
            if (!ok) problems.Add((field, message));
        }
        Check(EvalEverySteps is >= 0 and <= LoraTrainingOptions.MaxStepCount, "evalEverySteps", $"eval every steps must be 0-{LoraTrainingOptions.MaxStepCount} (got {EvalEverySteps})");
        Check(EarlyStoppingPatience is null or (>= 1 and <= 1_000_000), "earlyStoppingPatience", $"early stopping patience must be 1-1000000 (got {EarlyStoppingPatience})");
        Check(EarlyStoppingPatience is null || EvalEverySteps > 0, "earlyStoppingPatience", "early stopping patience needs evalEverySteps above 0");
        Check(CheckpointEverySteps is >= 0 and <= LoraTrainingOptions.MaxStepCount, "checkpointEverySteps", $"checkpoint every steps must be 0-{LoraTrainingOptions.MaxStepCount} (got {CheckpointEverySteps})");
        Check(EvalBatchSize is >= 1 and <= 256, "evalBatchSize", $"eval batch size must be 1-256 (got {EvalBatchSize})");
        Check(MaxEvalPairs >= 1, "maxEvalPairs", $"max eval pairs must be at least 1 (got {MaxEvalPairs})");
        Check(BleuSamples is >= 0 and <= 10_000, "bleuSamples", $"BLEU samples must be 0-10000 (got {BleuSamples})");
        Check(BleuMaxNewTokens is >= 1 and <= 1024, "bleuMaxNewTokens", $"BLEU max new tokens must be 1-1024 (got {BleuMaxNewTokens})");
        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming every value out of range.</summary>
    public void Validate()
    {
        if (Problems() is { Count: > 0 } problems)
            throw new ArgumentException(string.Join("; ", problems.Select(p => p.Message)) + ".");
    }
}
