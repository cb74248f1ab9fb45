using ParaphraseService.Training.FineTuning;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// A fine-tune job's options. Send them as JSON (with <c>datasetPath</c>, a file under a configured dataset root), or as
/// the <c>options</c> field of a multipart form whose <c>dataset</c> field holds the file.
/// </summary>
/// <param name="Adapter">Name of the adapter to produce (letters, digits, '-', '_', '.').</param>
/// <param name="Replace">Replace an existing adapter of that name when the job succeeds.</param>
/// <param name="DatasetPath">A dataset file on the server (JSON requests only).</param>
/// <param name="Format">auto (from the extension; for another name, from the content), paws, tsv, csv or jsonl.</param>
/// <param name="SourceColumn">TSV/CSV column (JSONL property) with the original text (default: source, else sentence1).</param>
/// <param name="TargetColumn">TSV/CSV column (JSONL property) with the paraphrase (default: target, else sentence2).</param>
/// <param name="LabelColumn">A column (property) that says which rows are paraphrases, e.g. MRPC's Quality; rows with
/// another value are skipped and counted. Default: PAWS's optional 'label' (0 or 1).</param>
/// <param name="LabelValues">With labelColumn, the values that mean paraphrase (default ["1"]), compared ignoring case.</param>
/// <param name="BothDirections">PAWS: train on each pair both ways.</param>
/// <param name="Lenient">Skip malformed rows (counted and reported) instead of refusing the dataset.</param>
/// <param name="TsvQuoting">TSV (not PAWS): read fields in double quotes as pandas and Python's csv write them ("a ""b""",
/// tabs and line breaks inside quotes).</param>
/// <param name="SampleSize">Use this many pairs, sampled with the seed (the original notebook used 5,000 PAWS pairs).</param>
/// <param name="EvalFraction">Share of pairs held out for evaluation, 0-0.5.</param>
/// <param name="TargetModules">Module names as PEFT takes them, or ["all-linear"].</param>
/// <param name="Rank">LoRA rank, 1-256.</param>
/// <param name="Alpha">LoRA alpha (scaling = alpha / rank).</param>
/// <param name="Dropout">LoRA dropout, [0, 1).</param>
/// <param name="LearningRate">Peak learning rate of AdamW, (0, 1).</param>
/// <param name="Schedule">linear or cosine decay after warmup.</param>
/// <param name="WarmupSteps">Steps of linear warmup.</param>
/// <param name="Epochs">Passes over the training split.</param>
/// <param name="MaxSteps">Stop after this many optimizer steps (overrides epochs when smaller).</param>
/// <param name="BatchSize">Examples per micro-batch, 1-256.</param>
/// <param name="GradientAccumulation">Micro-batches per optimizer step.</param>
/// <param name="MaxSequenceLength">Prompt plus target tokens per example, 8-2048 and at most the model's positions;
/// longer pairs are dropped (counted as too long), never cut.</param>
/// <param name="Seed">Same seed, same data order, same adapter.</param>
/// <param name="PromptTemplate">The prompt with {text}; the paraphrase follows it, ended by a newline. Default
/// "Original: {text}\nParaphrase:". Stored in the adapter's metadata and served with it.</param>
/// <param name="EvalEverySteps">Measure the eval loss every this many steps (0: only at the end).</param>
/// <param name="EarlyStoppingPatience">Stop after this many evaluations without a better eval loss.</param>
/// <param name="CheckpointEverySteps">Checkpoint interval (default from FineTunes:CheckpointEverySteps).</param>
/// <param name="BleuSamples">Held-out sources paraphrased and scored with BLEU, self-BLEU and iBLEU, 0-10000.</param>
/// <param name="GradientCheckpointing">Recompute activations in the backward pass to save memory.</param>
public sealed record FineTuneRequest(
    string? Adapter = null,
    bool Replace = false,
    string? DatasetPath = null,
    string Format = "auto",
    string? SourceColumn = null,
    string? TargetColumn = null,
    string? LabelColumn = null,
    IReadOnlyList<string>? LabelValues = null,
    bool BothDirections = false,
    bool Lenient = false,
    bool TsvQuoting = false,
    int? SampleSize = null,
    double EvalFraction = 0.1,
    IReadOnlyList<string>? TargetModules = null,
    int Rank = 16,
    double Alpha = 32,
    double Dropout = 0.05,
    double LearningRate = 2e-4,
    LearningRateSchedule Schedule = LearningRateSchedule.Linear,
    int WarmupSteps = 0,
    int Epochs = 1,
    int? MaxSteps = null,
    int BatchSize = 4,
    int GradientAccumulation = 1,
    int MaxSequenceLength = 128,
    long Seed = 42,
    string? PromptTemplate = null,
    int EvalEverySteps = 0,
    int? EarlyStoppingPatience = null,
    int? CheckpointEverySteps = null,
    int BleuSamples = 32,
    bool GradientCheckpointing = true);
