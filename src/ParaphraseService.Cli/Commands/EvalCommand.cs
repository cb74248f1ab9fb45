using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Evaluation;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// <c>eval</c>: mean negative log-likelihood and perplexity of a text file (every token) or of paraphrase pairs (the
/// target tokens only, in the adapter's or the given template), for a model, the model with an adapter, or several
/// quantizations side by side (<c>--compare none,int8</c>: agreement, KL and logits error on the same tokens).
/// </summary>
internal static class EvalCommand
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.Dtype();
        var quantization = CommonOptions.Quantization();
        var data = new Option<string>("--data", "-d")
        {
            Description = "A text file (.txt: every token scored) or paraphrase pairs (PAWS TSV, TSV/CSV with source/target columns, JSONL; the target tokens scored).",
            Required = true,
        };
        var format = new Option<string>("--format")
        {
            Description = "auto (from the extension; text unless .tsv, .csv, .jsonl or .ndjson), text, paws, tsv, csv or jsonl.",
            DefaultValueFactory = _ => "auto",
        };
        var adapter = new Option<string?>("--adapter", "-a") { Description = "A LoRA adapter folder (PEFT format); the base is evaluated beside it unless --compare is given." };
        var compare = new Option<string?>("--compare")
        {
            Description = "Quantizations to evaluate side by side on the same tokens, the first the reference: e.g. none,int8 (each loaded separately).",
        };
        var kernel = new Option<Int8Kernel>("--int8-kernel") { Description = "int8 compute path: auto (avx2 on a CPU with AVX2, else fbgemm; dequantize on a GPU), avx2, fbgemm or dequantize.", DefaultValueFactory = _ => Int8Kernel.Auto };
        var outlierFactor = CommonOptions.Int8OutlierFactor();
        var template = new Option<string?>("--template")
        {
            Description = "Pairs: the prompt with {text}. Default: the adapter's own template, else the fine-tune template 'Original: {text}\\nParaphrase:'.",
        };
        var window = new Option<int?>("--window") { Description = "Text: tokens per window, each scored alone (default: the model's context, at most 1024)." };
        var maxLength = new Option<int?>("--max-length") { Description = "Pairs: most prompt plus target tokens, cut as training cuts them (default: the model's context, at most 1024)." };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N windows or pairs." };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass; 0 picks one from the vocabulary and length.", DefaultValueFactory = _ => 0 };
        var bleuSamples = new Option<int>("--bleu-samples")
        {
            Description = "Pairs: also paraphrase the first N sources greedily with each model and score BLEU, self-BLEU and iBLEU against the references.",
            DefaultValueFactory = _ => 0,
        };
        var lenient = new Option<bool>("--lenient") { Description = "Pairs: skip malformed rows (counted) instead of failing." };
        var tsvQuoting = CommonOptions.TsvQuoting();
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON." };

        var command = new Command("eval", "Perplexity of a text or of paraphrase pairs under a model, an adapter, or several quantizations side by side.")
        {
            model, data, format, adapter, compare, quantization, kernel, outlierFactor, template, window, maxLength, limit, batchSize, bleuSamples, lenient, tsvQuoting, json, device, dtype,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var clock = Stopwatch.StartNew();
            var dataPath = parse.GetValue(data)!;
            var mode = ResolveFormat(parse.GetValue(format)!, dataPath);
            var quantizations = parse.GetValue(compare) is { } list
                ? list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                : [parse.GetValue(quantization)!];
            if (parse.GetValue(compare) is not null && quantizations.Length < 2)
                throw new UsageException("--compare needs at least two quantizations, e.g. none,int8.");
            if (parse.GetResult(quantization) is { Implicit: false } && parse.GetValue(compare) is not null)
                throw new UsageException("Give either --quantization or --compare, not both.");
            if (parse.GetValue(limit) is < 1)
                throw new UsageException("--limit must be at least 1.");
            if (parse.GetValue(batchSize) < 0)
                throw new UsageException("--batch-size must be 0 (automatic) or more.");
            if (parse.GetValue(bleuSamples) < 0)
                throw new UsageException("--bleu-samples must be 0 or more.");
            if (mode is null && (parse.GetValue(template) is not null || parse.GetValue(bleuSamples) > 0 || parse.GetValue(maxLength) is not null))
                throw new UsageException("--template, --max-length and --bleu-samples apply to pairs; this data is read as text.");
            if (mode is not null && parse.GetValue(window) is not null)
                throw new UsageException("--window applies to a text file; this data is read as pairs.");
            CommonOptions.ExistingFile(dataPath, "--data");
            var adapterFolder = parse.GetValue(adapter);
            if (adapterFolder is not null && !Directory.Exists(adapterFolder))
                throw new UsageException($"--adapter: no such folder '{adapterFolder}'.");
            var prompt = PairsTemplate(parse.GetValue(template), adapterFolder);

            var loads = new List<LoadedModel>();
            try
            {
                foreach (var q in quantizations)
                {
                    loads.Add(await ModelSource.LoadAsync(parse.GetValue(model)!, CommonOptions.LoadOptions(parse, device, dtype, quantization) with
                    {
                        Quantization = q,
                        Int8 = CommonOptions.Int8(parse, outlierFactor, parse.GetValue(kernel)),
                        MaxResidentAdapters = adapterFolder is null ? 0 : 1,
                    }, ProgressReporter.ForDownloads(), ct));
                }
                var first = loads[0];
                if (first.Notice is { } notice)
                    await Console.Error.WriteLineAsync($"note: {notice}");

                var adapters = new List<LoraAdapter?>();
                foreach (var loaded in loads)
                {
                    if (adapterFolder is null)
                    {
                        adapters.Add(null);
                        continue;
                    }
                    var (lora, _, warnings) = loaded.Adapters!.LoadFolder(adapterFolder);
                    adapters.Add(lora);
                    if (loaded == first)
                        foreach (var warning in warnings)
                            await Console.Error.WriteLineAsync($"warning: {warning}");
                }
                var labels = loads.Select(Label).ToList();
                if (labels.Distinct().Count() < labels.Count)
                    labels = labels.Select((l, i) => $"{l}#{i + 1}").ToList();
                var models = parse.GetValue(compare) is not null || adapterFolder is null
                    ? loads.Select((l, i) => new EvalModel(labels[i], l.Model, adapters[i])).ToList()
                    : [new EvalModel("base", first.Model), new EvalModel($"adapter {adapters[0]!.Name}", first.Model, adapters[0])];

                var context = Math.Min(first.Config.MaxPositions, 1024);
                IReadOnlyList<EvalSequence> sequences;
                IReadOnlyList<ParaphrasePair>? pairs = null;
                DatasetSummary? summary = null;
                int length;
                if (mode is null)
                {
                    length = parse.GetValue(window) ?? context;
                    if (length < 2 || length > first.Config.MaxPositions)
                        throw new UsageException($"--window must be 2-{first.Config.MaxPositions} (the model's context).");
                    sequences = EvalSequences.FromTextFile(dataPath, first.Tokenizer, length);
                }
                else
                {
                    length = parse.GetValue(maxLength) ?? context;
                    if (length < 2 || length > first.Config.MaxPositions)
                        throw new UsageException($"--max-length must be 2-{first.Config.MaxPositions} (the model's context).");
                    var read = ParaphraseDatasetReader.Read(dataPath, new DatasetReadOptions { Format = mode.Value, Lenient = parse.GetValue(lenient), TsvQuoting = parse.GetValue(tsvQuoting) }, ct);
                    var prepared = DatasetPreparation.Prepare(read, new DatasetPreparationOptions { EvalFraction = 0 }, Path.GetFileName(dataPath));
                    (pairs, summary) = (prepared.Train, prepared.Summary);
                    if (parse.GetValue(limit) is { } n) pairs = pairs.Take(n).ToList();
                    sequences = EvalSequences.FromPairs(pairs, prompt, first.Tokenizer, length);
                }
                if (mode is null && parse.GetValue(limit) is { } windows)
                    sequences = sequences.Take(windows).ToList();

                var size = parse.GetValue(batchSize) is > 0 and var given
                    ? given
                    : LikelihoodEvaluator.AutoBatchSize(sequences.Max(s => s.Ids.Count), first.Config.VocabSize);
                var total = sequences.Sum(s => (long)s.ScoredCount);
                var bar = new ProgressBar("eval", total, "tokens");
                var report = LikelihoodEvaluator.Evaluate(models, sequences, first.Config.EosTokenId, size, done => bar.Report(done), ct);
                bar.Complete(total);

                var paraphrases = new List<ParaphraseFigures>();
                if (pairs is not null && parse.GetValue(bleuSamples) is > 0 and var samples)
                {
                    var sample = pairs.Take(samples).ToList();
                    foreach (var m in models)
                    {
                        var loaded = loads.First(l => l.Model == m.Model);
                        var generating = new ProgressBar($"paraphrase ({m.Name})", sample.Count, "pairs");
                        var (scores, examples) = GreedyParaphrases.Score(m.Model, m.Adapter, loaded.Tokenizer, prompt, sample,
                            progress: done => generating.Report(done), cancellationToken: ct);
                        generating.Complete(sample.Count);
                        paraphrases.Add(new ParaphraseFigures(m.Name, scores.Bleu, scores.SelfBleu, scores.IBleu, scores.Count, examples.Take(3).ToList()));
                    }
                }

                var result = new EvalResult
                {
                    Model = first.Source,
                    Adapter = adapters[0]?.Name,
                    Data = dataPath,
                    Mode = mode is null ? "text" : "pairs",
                    Template = mode is null ? null : prompt.Template,
                    Window = mode is null ? length : null,
                    MaxLength = mode is null ? null : length,
                    Pairs = pairs?.Count,
                    PairsRead = summary?.PairsRead,
                    Sequences = report.Sequences,
                    ScoredTokens = report.ScoredTokens,
                    Results = report.Models.Select((r, i) => new ModelFigures(r.Name, loads.First(l => l.Model == models[i].Model).Quantization.ToString().ToLowerInvariant(),
                        KernelOf(loads.First(l => l.Model == models[i].Model)), models[i].Adapter?.Name, r.MeanNll, r.Perplexity)).ToList(),
                    Comparisons = report.Comparisons,
                    Paraphrases = paraphrases,
                    FbgemmActivationBits = loads.Any(l => KernelOf(l) == "fbgemm") ? Int8Linear.FbgemmActivationBits : null,
                    Seconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
                };
                Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(result, s_json) : Describe(result));
                return 0;
            }
            finally
            {
                foreach (var loaded in loads) loaded.Dispose();
            }
        }));
        return command;
    }

    /// <summary>null for text, else the pairs format.</summary>
    private static DatasetFormat? ResolveFormat(string format, string path) => format.Trim().ToLowerInvariant() switch
    {
        "auto" => ParaphraseDatasetReader.FormatFromExtension(path),
        "text" => null,
        "paws" => DatasetFormat.Paws,
        "tsv" => DatasetFormat.Tsv,
        "csv" => DatasetFormat.Csv,
        "jsonl" => DatasetFormat.Jsonl,
        _ => throw new UsageException($"Unknown --format '{format}': use auto, text, paws, tsv, csv or jsonl."),
    };

    private static PromptTemplate PairsTemplate(string? given, string? adapterFolder)
    {
        if (given is not null)
        {
            try
            {
                return new PromptTemplate(given.Replace("\\n", "\n", StringComparison.Ordinal));
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"--template: {e.Message}");
            }
        }
        var metadata = adapterFolder is null ? null : Path.Combine(adapterFolder, AdapterMetadata.FileName);
        return metadata is not null && File.Exists(metadata)
            ? PromptTemplate.ForAdapter(AdapterMetadata.Load(metadata).PromptTemplate)
            : new PromptTemplate(PromptTemplate.FineTuneTemplateText);
    }

    private static string Label(LoadedModel loaded) =>
        loaded.Quantization == Quantization.Int8 ? $"int8 ({KernelOf(loaded)})" : "none";

    private static string? KernelOf(LoadedModel loaded) =>
        loaded.Model.modules().OfType<Int8Linear>().FirstOrDefault() is { } layer ? layer.Kernel.ToString().ToLowerInvariant() : null;

    private static string Describe(EvalResult r)
    {
        var lines = new List<string>
        {
            r.Mode == "text"
                ? Invariant($"{r.Model} on {r.Data}: text, {r.Sequences} window(s) of up to {r.Window} tokens, {r.ScoredTokens} tokens scored")
                : Invariant($"{r.Model} on {r.Data}: {r.Pairs} pairs, {r.ScoredTokens} target tokens scored, template {JsonSerializer.Serialize(r.Template)}"),
        };
        var width = r.Results.Max(m => m.Name.Length);
        foreach (var m in r.Results)
            lines.Add(Invariant($"  {m.Name.PadRight(width)}  loss {m.Nll:F4}  perplexity {m.Perplexity:F3}"));
        foreach (var c in r.Comparisons)
        {
            lines.Add(Invariant(
                $"  {c.Other} vs {c.Reference}: perplexity {c.PerplexityIncrease * 100:+0.00;-0.00}%, top-1 agreement {c.Top1Agreement * 100:F2}%, KL {c.MeanKl:0.00e+0} nats, logits error {c.LogitsRelativeError:0.00e+0}"));
        }
        foreach (var p in r.Paraphrases)
            lines.Add(Invariant($"  {p.Name}: {p.Count} greedy paraphrases: BLEU {p.Bleu:F2}, self-BLEU {p.SelfBleu:F2}, iBLEU {p.IBleu:F2}"));
        if (r.FbgemmActivationBits is { } bits)
            lines.Add(Invariant($"  (fbgemm int8 kernel: activations quantized in {bits} bits on this CPU)"));
        return string.Join(Environment.NewLine, lines);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed record ModelFigures(string Name, string Quantization, string? Int8Kernel, string? Adapter, double Nll, double Perplexity);

    private sealed record ParaphraseFigures(string Name, double Bleu, double SelfBleu, double IBleu, int Count, IReadOnlyList<ParaphraseExample> Examples);

    private sealed record EvalResult
    {
        public required string Model { get; init; }
        public string? Adapter { get; init; }
        public required string Data { get; init; }
        public required string Mode { get; init; }
        public string? Template { get; init; }
        public int? Window { get; init; }
        public int? MaxLength { get; init; }
        public int? Pairs { get; init; }
        public int? PairsRead { get; init; }
        public int Sequences { get; init; }
        public long ScoredTokens { get; init; }
        public required IReadOnlyList<ModelFigures> Results { get; init; }
        public required IReadOnlyList<LikelihoodComparison> Comparisons { get; init; }
        public required IReadOnlyList<ParaphraseFigures> Paraphrases { get; init; }
        public int? FbgemmActivationBits { get; init; }
        public double Seconds { get; init; }
    }
}
