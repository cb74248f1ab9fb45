using System.CommandLine;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>train</c>: fine-tune a LoRA adapter offline on a paraphrase dataset and write it as a PEFT folder.</summary>
internal static class TrainCommand
{
    public const string DefaultTemplate = PromptTemplate.FineTuneTemplateText;

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var quantization = CommonOptions.Quantization();
        var data = new Option<string>("--data", "-d") { Description = "PAWS TSV, TSV/CSV with source/target columns, or JSONL {source, target}.", Required = true };
        var format = new Option<DatasetFormat>("--format")
        {
            Description = "auto (from the extension; for another name, from the content), paws, tsv, csv or jsonl.", DefaultValueFactory = _ => DatasetFormat.Auto,
        };
        var sourceColumn = new Option<string?>("--source-column") { Description = "Column (JSONL property) with the original text (default: source, else sentence1)." };
        var targetColumn = new Option<string?>("--target-column") { Description = "Column (JSONL property) with the paraphrase (default: target, else sentence2)." };
        var labelColumn = new Option<string?>("--label-column")
        {
            Description = "Column (property) saying which rows are paraphrases, e.g. MRPC's Quality; rows with another value are skipped and counted (default: PAWS's optional label, 0 or 1).",
        };
        var labelValues = new Option<string?>("--label-values") { Description = "With --label-column: comma-separated values meaning paraphrase (default 1)." };
        var output = new Option<string>("--out", "-o") { Description = "Folder for the adapter (PEFT format + paraphrase_adapter.json).", Required = true };
        var both = new Option<bool>("--both-directions") { Description = "Train on each pair both ways." };
        var lenient = new Option<bool>("--lenient") { Description = "Skip malformed rows (counted) instead of failing." };
        var tsvQuoting = CommonOptions.TsvQuoting();
        var sample = new Option<int?>("--sample") { Description = "Use this many pairs, sampled with the seed." };
        var evalFraction = new Option<double>("--eval-fraction") { Description = "Share held out for evaluation.", DefaultValueFactory = _ => 0.1 };
        var rank = new Option<int>("--rank", "-r") { DefaultValueFactory = _ => 16 };
        var alpha = new Option<double>("--alpha") { DefaultValueFactory = _ => 32 };
        var dropout = new Option<double>("--dropout") { DefaultValueFactory = _ => 0.05 };
        var targets = new Option<string>("--targets")
        {
            Description = "Comma-separated module names, all-linear, or default (PEFT's default for the model family: q_proj,v_proj for GPT-J and GPT-Neo, c_attn for GPT-2).",
            DefaultValueFactory = _ => "default",
        };
        var learningRate = new Option<double>("--lr") { DefaultValueFactory = _ => 2e-4 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 1 };
        var maxSteps = new Option<int?>("--max-steps");
        var batchSize = new Option<int>("--batch-size") { DefaultValueFactory = _ => 4 };
        var accumulation = new Option<int>("--grad-accum") { DefaultValueFactory = _ => 1 };
        var maxLength = new Option<int>("--max-length")
        {
            Description = "Most prompt plus target tokens of an example; longer pairs are dropped (counted as too long), never cut.", DefaultValueFactory = _ => 128,
        };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 0 };
        var schedule = new Option<LearningRateSchedule>("--schedule") { DefaultValueFactory = _ => LearningRateSchedule.Linear };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 42 };
        var template = new Option<string>("--template") { Description = "Prompt with {text}; the target follows it, ended by a newline.", DefaultValueFactory = _ => DefaultTemplate };
        var evalEvery = new Option<int>("--eval-every") { Description = "Measure the eval loss every N steps (0: only at the end).", DefaultValueFactory = _ => 0 };
        var patience = new Option<int?>("--early-stopping") { Description = "Stop after N evaluations without a better eval loss (needs --eval-every)." };
        var checkpointEvery = new Option<int>("--checkpoint-every")
        {
            Description = "Save a checkpoint every N steps in <out>.checkpoints; a later run with the same arguments resumes from it.",
            DefaultValueFactory = _ => 0,
        };
        var bleuSamples = new Option<int>("--bleu-samples") { Description = "Held-out sources paraphrased and scored (BLEU, self-BLEU, iBLEU).", DefaultValueFactory = _ => 32 };
        var noCheckpointing = new Option<bool>("--no-gradient-checkpointing") { Description = "Keep every block's activations (faster, more memory)." };

        var command = new Command("train", "Fine-tune a LoRA adapter on paraphrase pairs (offline) and write it as a Hugging Face PEFT folder.")
        {
            model, data, format, sourceColumn, targetColumn, labelColumn, labelValues, output, both, lenient, tsvQuoting, sample, evalFraction, rank, alpha, dropout, targets, learningRate, epochs, maxSteps,
            batchSize, accumulation, maxLength, warmup, schedule, seed, template, device, quantization, evalEvery, patience, checkpointEvery,
            bleuSamples, noCheckpointing,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            PromptTemplate prompt;
            try
            {
                prompt = new PromptTemplate(parse.GetValue(template)!);
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"--template: {e.Message}");
            }
            var targetNames = parse.GetValue(targets)!;
            var options = new LoraTrainingOptions
            {
                Rank = parse.GetValue(rank), Alpha = parse.GetValue(alpha), Dropout = parse.GetValue(dropout),
                TargetModules = targetNames.ToLowerInvariant() switch
                {
                    "all-linear" => null,
                    "default" => new LoraTrainingOptions().TargetModules, // until the model says its family's default
                    _ => targetNames.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                },
                LearningRate = parse.GetValue(learningRate), Epochs = parse.GetValue(epochs), MaxSteps = parse.GetValue(maxSteps),
                BatchSize = parse.GetValue(batchSize), GradientAccumulation = parse.GetValue(accumulation), MaxSequenceLength = parse.GetValue(maxLength),
                WarmupSteps = parse.GetValue(warmup), Schedule = parse.GetValue(schedule), Seed = parse.GetValue(seed),
                GradientCheckpointing = !parse.GetValue(noCheckpointing),
            };
            var settings = new FineTuneSettings
            {
                Training = options, EvalEverySteps = parse.GetValue(evalEvery), EarlyStoppingPatience = parse.GetValue(patience),
                CheckpointEverySteps = parse.GetValue(checkpointEvery), BleuSamples = parse.GetValue(bleuSamples),
            };
            try
            {
                settings.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            var dataPath = CommonOptions.ExistingFile(parse.GetValue(data)!, "--data");
            var outputFolder = parse.GetValue(output)!;
            if (Directory.Exists(outputFolder) && Directory.EnumerateFileSystemEntries(outputFolder).Any())
                throw new IOException($"Output folder '{outputFolder}' exists and is not empty.");

            var labels = parse.GetValue(labelValues) is { } values ? values.Split(',', StringSplitOptions.TrimEntries) : null;
            if (labels is not null && parse.GetValue(labelColumn) is null)
                throw new UsageException("--label-values needs --label-column (the column the values are in).");
            if (labels is not null && labels.Any(string.IsNullOrEmpty))
                throw new UsageException("--label-values must not hold empty values.");
            var read = ParaphraseDatasetReader.Read(dataPath, new DatasetReadOptions
            {
                Format = parse.GetValue(format), SourceColumn = parse.GetValue(sourceColumn), TargetColumn = parse.GetValue(targetColumn),
                LabelColumn = parse.GetValue(labelColumn), LabelValues = labels, BothDirections = parse.GetValue(both), Lenient = parse.GetValue(lenient),
                TsvQuoting = parse.GetValue(tsvQuoting),
            }, ct);
            // The base must pass gradients to the adapters of earlier layers: int8 layers keep their matrix for the backward pass.
            using var loaded = await ModelSource.LoadAsync(parse.GetValue(model)!, new ModelLoadOptions
            {
                Device = parse.GetValue(device)!, Quantization = parse.GetValue(quantization)!, MaxResidentAdapters = 1,
                Int8 = Int8Options.Default with { KeepWeightForTraining = true },
            }, ProgressReporter.ForDownloads(), ct);
            if (loaded.Notice is { } notice)
                await Console.Error.WriteLineAsync($"note: {notice}");
            if (targetNames.Equals("default", StringComparison.OrdinalIgnoreCase))
                options = options with { TargetModules = loaded.Adapters!.Target.DefaultTargetModules ?? options.TargetModules };
            else if (options.TargetModules is { } names && LoraTargets.Problem(names, loaded.Adapters!.Target) is { } targetProblem)
                throw new UsageException($"--targets: {targetProblem}.");
            if (options.MaxSequenceLength > loaded.Config.MaxPositions)
                throw new UsageException($"--max-length {options.MaxSequenceLength} is more than the {loaded.Config.MaxPositions} positions the model holds.");
            if (TrainingBatches.TemplateProblem(prompt, loaded.Tokenizer, options.MaxSequenceLength) is { } fit)
                throw new UsageException($"{fit}: raise --max-length or shorten --template.");
            var prepared = DatasetPreparation.Prepare(read, new DatasetPreparationOptions
            {
                SampleSize = parse.GetValue(sample), EvalFraction = parse.GetValue(evalFraction), Seed = (int)options.Seed,
                MaxTokensPerExample = options.MaxSequenceLength, ExampleTokenCounter = pair => TrainingBatches.Length(pair, prompt, loaded.Tokenizer),
            }, Path.GetFileName(dataPath));
            var s = prepared.Summary;
            var skipped = s.NonParaphrasesSkipped > 0 ? $", {s.NonParaphrasesSkipped} rows not paraphrases skipped" : "";
            await Console.Error.WriteLineAsync($"data: {s.PairsRead} pairs read, {s.TrainCount} train, {s.EvalCount} eval " +
                $"({s.CopiesDropped} copies, {s.DuplicatesDropped} duplicates, {s.TooLongDropped} over {options.MaxSequenceLength} tokens dropped{skipped})");

            var checkpoints = settings.CheckpointEverySteps > 0 ? Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputFolder)) + ".checkpoints" : null;
            using var run = new FineTuneRun(loaded.Model, loaded.Adapters!, loaded.Tokenizer, prompt,
                Path.GetFileName(outputFolder.TrimEnd(Path.DirectorySeparatorChar)), prepared, settings, checkpoints);
            if (run.ResumedFromStep is { } from)
                await Console.Error.WriteLineAsync($"resuming from the checkpoint at step {from} in {checkpoints}");
            var bar = new ProgressBar("train", run.TotalSteps, "steps");
            foreach (var e in run.Run())
            {
                ct.ThrowIfCancellationRequested();
                if (e is FineTuneEvent.StepTaken { Step: var step })
                {
                    var detail = FormattableString.Invariant($"epoch {step.Epoch}, loss {step.Loss:F4}, lr {step.LearningRate:E2}, {step.TokensPerSecond:F0} tokens/s");
                    if (step.Step >= step.TotalSteps) bar.Complete(step.Step, detail);
                    else bar.Report(step.Step, detail);
                    continue;
                }
                var line = e switch
                {
                    FineTuneEvent.Evaluated { Base: true } b => $"eval loss of the base model: {b.EvalLoss:F4}",
                    FineTuneEvent.Evaluated v => $"step {v.Step}: eval loss {v.EvalLoss:F4}",
                    FineTuneEvent.CheckpointSaved c => $"step {c.Step}: checkpoint saved",
                    FineTuneEvent.Scored sc => $"{sc.Scores.Count} held-out sources: BLEU {sc.Scores.Bleu:F1}, self-BLEU {sc.Scores.SelfBleu:F1}, iBLEU {sc.Scores.IBleu:F1}",
                    _ => null,
                };
                if (line is null) continue;
                bar.Interrupt();
                await Console.Error.WriteLineAsync(line);
            }
            bar.Complete(run.Step, run.Step < run.TotalSteps ? "stopped early" : null); // no-op when the last step completed it
            using var adapter = run.TakeAdapter();
            var metrics = run.Metrics;
            AdapterExport.Save(outputFolder, adapter, options, loaded.Adapters!.Target, loaded.Source, prompt, s, metrics);
            if (checkpoints is not null && Directory.Exists(checkpoints)) Directory.Delete(checkpoints, recursive: true);
            Console.WriteLine(metrics.TryGetValue("eval_loss", out var after)
                ? $"{outputFolder}: eval loss {metrics["eval_loss_base"]:F4} -> {after:F4} over {s.EvalCount} held-out pairs"
                : $"{outputFolder}: trained on {s.TrainCount} pairs (no pair held out for evaluation)");
            return 0;
        }));
        return command;
    }
}
