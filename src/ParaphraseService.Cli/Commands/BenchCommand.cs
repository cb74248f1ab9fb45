using System.CommandLine;
using System.Text.Json;
using ParaphraseService.Cli.Benchmarks;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>bench</c>: performance figures printed as a table (or JSON), never asserted in tests.</summary>
internal static class BenchCommand
{
    // A figure that does not apply to a run (the batched run's p50) is NaN, written as the string "NaN".
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var steps = new Option<int>("--steps") { Description = "Decode steps timed per measurement.", DefaultValueFactory = _ => 32 };
        var quant = new Command("quant", "fp32 vs int8 on a GPT-J-shaped 250M-parameter model: decode speed, memory, bandwidth use, logit error.")
        {
            json, steps,
        };
        quant.SetAction((parse, ct) => CliFailure.Run(() =>
        {
            var asJson = parse.GetValue(json);
            var report = QuantBenchmark.Run(parse.GetValue(steps), line => Console.Error.WriteLine(line));
            Console.WriteLine(asJson ? JsonSerializer.Serialize(report, s_json) : Table(report));
            return Task.FromResult(0);
        }));
        var loraJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var loraSteps = new Option<int>("--steps") { Description = "Decode steps timed per measurement.", DefaultValueFactory = _ => 32 };
        var lora = new Command("lora", "16 decode rows over 4 rank-16 LoRA adapters vs no adapter, int8 250M bench model: throughput ratio, adapter load time.")
        {
            loraJson, loraSteps,
        };
        lora.SetAction((parse, ct) => CliFailure.Run(() =>
        {
            var report = LoraBenchmark.Run(parse.GetValue(loraSteps), line => Console.Error.WriteLine(line));
            Console.WriteLine(parse.GetValue(loraJson) ? JsonSerializer.Serialize(report, s_json) : LoraTable(report));
            return Task.FromResult(0);
        }));
        var url = new Option<string>("--url") { Description = "A running service.", DefaultValueFactory = _ => "http://127.0.0.1:5000" };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients in the second run.", DefaultValueFactory = _ => 16 };
        var requests = new Option<int>("--requests") { Description = "Requests per client.", DefaultValueFactory = _ => 4 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens per completion.", DefaultValueFactory = _ => 32 };
        var serveJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var fineTuneData = new Option<string?>("--fine-tune-data") { Description = "Repeat the runs while a fine-tune job trains on this dataset (needs the admin key)." };
        var fineTuneOptions = new Option<string>("--fine-tune-options")
        {
            Description = "The job's options as JSON.",
            DefaultValueFactory = _ => """{"adapter":"bench-fine-tune","replace":true,"targetModules":["all-linear"],"rank":16,"epochs":100,"bleuSamples":0}""",
        };
        var adminKey = new Option<string?>("--admin-key") { Description = "The service's admin API key (default: PARAPHRASE_ADMIN_KEY)." };
        var serve = new Command("serve", "Drive a running service (scripts/bench-serve.sh starts one): 1 client vs N concurrent, tokens/s, latency, " +
            "time to first token; with --fine-tune-data, again while a fine-tune job trains on the same model.")
        {
            url, clients, requests, maxTokens, serveJson, fineTuneData, fineTuneOptions, adminKey,
        };
        serve.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            ServeBenchFineTune? fineTune = null;
            if (parse.GetValue(fineTuneData) is { } data)
            {
                var key = parse.GetValue(adminKey) ?? Environment.GetEnvironmentVariable("PARAPHRASE_ADMIN_KEY")
                    ?? throw new UsageException("--fine-tune-data needs the admin key: --admin-key or PARAPHRASE_ADMIN_KEY.");
                CommonOptions.ExistingFile(data, "--fine-tune-data");
                var jobOptions = System.Text.Json.Nodes.JsonNode.Parse(parse.GetValue(fineTuneOptions)!) as System.Text.Json.Nodes.JsonObject
                    ?? throw new UsageException("--fine-tune-options must be a JSON object.");
                fineTune = new ServeBenchFineTune(data, key, jobOptions);
            }
            var report = await ServeBenchmark.Run(new Uri(parse.GetValue(url)!), parse.GetValue(clients), parse.GetValue(requests), parse.GetValue(maxTokens),
                line => Console.Error.WriteLine(line), ct, fineTune);
            Console.WriteLine(parse.GetValue(serveJson) ? JsonSerializer.Serialize(report, s_json) : ServeTable(report));
            return 0;
        }));
        var soakUrl = new Option<string>("--url") { Description = "A running service.", DefaultValueFactory = _ => "http://127.0.0.1:5000" };
        var minutes = new Option<double>("--minutes") { Description = "How long to keep the service saturated.", DefaultValueFactory = _ => 10 };
        var soakClients = new Option<int>("--clients") { Description = "Concurrent clients.", DefaultValueFactory = _ => 32 };
        var soakJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var soak = new Command("soak", "Keep a running service saturated (scripts/soak.sh starts one with a small queue): status counts, " +
            "latency, resident memory growth after a warm-up.")
        {
            soakUrl, minutes, soakClients, soakJson,
        };
        soak.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            if (parse.GetValue(minutes) is not (> 0 and <= 24 * 60) || parse.GetValue(soakClients) is not (> 0 and <= 4096))
                throw new UsageException("--minutes must be in (0, 1440] and --clients in 1-4096.");
            var report = await SoakBenchmark.Run(new Uri(parse.GetValue(soakUrl)!), TimeSpan.FromMinutes(parse.GetValue(minutes)), parse.GetValue(soakClients),
                line => Console.Error.WriteLine(line), ct);
            Console.WriteLine(parse.GetValue(soakJson) ? JsonSerializer.Serialize(report, s_json) : SoakTable(report));
            return report.Statuses.Keys.All(s => s is 200 or 429) && report.TransportErrors == 0 ? 0 : 1;
        }));
        var specModel = CommonOptions.Model();
        var specAdapter = new Option<string?>("--adapter", "-a") { Description = "A PEFT adapter folder to paraphrase with (its own prompt template)." };
        var specData = new Option<string>("--data") { Description = "Paraphrase pairs (PAWS TSV, TSV, CSV, JSONL): their sources are paraphrased.", Required = true };
        var specSources = new Option<int>("--sources") { Description = "Sources paraphrased.", DefaultValueFactory = _ => 64 };
        var specTokens = new Option<int>("--max-new-tokens", "-n") { Description = "Most tokens per paraphrase.", DefaultValueFactory = _ => 48 };
        var specClients = new Option<int>("--clients") { Description = "Concurrent requests in the batched run.", DefaultValueFactory = _ => 16 };
        var specBench = new Option<bool>("--bench-model") { Description = "Also the random-weight bench-250m int8 model (drafts rarely right)." };
        var specBudgetOnly = new Option<bool>("--budget-only")
        {
            Description = "Drafts as long as the step's budget allows, without cutting them to what the measured step cost says pays (for comparison).",
        };
        var specJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var specQuantization = CommonOptions.Quantization();
        var specKvCache = CommonOptions.KvCache();
        var speculation = new Command("speculation", "Prompt-lookup speculative decoding vs plain decoding on paraphrase prompts, in one run: " +
            "1 request at a time (tokens/s, p50 latency) and N at once through the continuous batcher; acceptance rate, tokens per step.")
        {
            specModel, specAdapter, specData, specSources, specTokens, specClients, specBench, specBudgetOnly, specJson, specQuantization, specKvCache,
        };
        speculation.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            if (parse.GetValue(specSources) is not (> 0 and <= 10_000) || parse.GetValue(specClients) is not (> 0 and <= 256)
                || parse.GetValue(specTokens) is not (> 0 and <= 1024))
                throw new UsageException("--sources must be 1-10000, --clients 1-256 and --max-new-tokens 1-1024.");
            var data = CommonOptions.ExistingFile(parse.GetValue(specData)!, "--data");
            var sources = ParaphraseService.Training.Datasets.ParaphraseDatasetReader.Read(data, cancellationToken: ct).Pairs
                .Select(p => p.Source.Trim()).Where(s => s.Length > 0).Distinct().Take(parse.GetValue(specSources)).ToList();
            if (sources.Count == 0)
                throw new UsageException($"'{data}' holds no paraphrase pairs.");
            using var loaded = await ParaphraseService.Model.Loading.ModelSource.LoadAsync(parse.GetValue(specModel)!,
                new ParaphraseService.Model.Loading.ModelLoadOptions
                {
                    Device = "cpu", Quantization = parse.GetValue(specQuantization)!, MaxResidentAdapters = parse.GetValue(specAdapter) is null ? 0 : 1,
                    KvCache = parse.GetValue(specKvCache)!,
                }, ProgressReporter.ForDownloads(), ct);
            ParaphraseService.Model.Lora.LoraAdapter? lora = null;
            var template = ParaphraseService.Training.Prompts.PromptTemplate.Default;
            if (parse.GetValue(specAdapter) is { } folder)
            {
                (lora, _, _) = loaded.Adapters!.LoadFolder(folder);
                template = Paraphrasing.LocalParaphraser.TemplateOf(folder);
            }
            var report = SpeculationBenchmark.Run(loaded, lora, template, sources, parse.GetValue(specTokens), parse.GetValue(specClients),
                parse.GetValue(specBench), new ParaphraseService.Model.Generation.SpeculationOptions { CostAware = !parse.GetValue(specBudgetOnly) }, line => Console.Error.WriteLine(line));
            Console.WriteLine(parse.GetValue(specJson) ? JsonSerializer.Serialize(report, s_json) : SpeculationTable(report));
            return 0;
        }));
        var profileModel = CommonOptions.Model();
        var profileQuantization = CommonOptions.Quantization();
        var profileBatches = new Option<int[]>("--batch") { Description = "Rows decoded together (repeatable).", DefaultValueFactory = _ => [1, 8] };
        var profileSteps = new Option<int>("--steps") { Description = "Decode steps timed per batch size.", DefaultValueFactory = _ => 32 };
        var profileJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var profileOutlierFactor = CommonOptions.Int8OutlierFactor();
        var profileKvCache = CommonOptions.KvCache();
        var profile = new Command("profile", "Where a decode step's time goes (GEMMs, attention, norms, sampling, ...), on the step generate and the " +
            "service both run: each module type's own time per step and its share.")
        {
            profileModel, profileQuantization, profileBatches, profileSteps, profileJson, profileOutlierFactor, profileKvCache,
        };
        profile.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var batches = parse.GetValue(profileBatches) ?? [];
            if (batches.Length == 0 || batches.Any(b => b is < 1 or > 256) || parse.GetValue(profileSteps) is not (> 0 and <= 4096))
                throw new UsageException("--batch must be 1-256 and --steps 1-4096.");
            using var loaded = await ParaphraseService.Model.Loading.ModelSource.LoadAsync(parse.GetValue(profileModel)!,
                new ParaphraseService.Model.Loading.ModelLoadOptions
                {
                    Device = "cpu", Quantization = parse.GetValue(profileQuantization)!, Int8 = CommonOptions.Int8(parse, profileOutlierFactor),
                    KvCache = parse.GetValue(profileKvCache)!,
                },
                ProgressReporter.ForDownloads(), ct);
            var reports = batches.Select(b => StepProfiler.Run(loaded, b, parse.GetValue(profileSteps), line => Console.Error.WriteLine(line))).ToList();
            Console.WriteLine(parse.GetValue(profileJson) ? JsonSerializer.Serialize(reports, s_json) : string.Join(Environment.NewLine, reports.Select(ProfileTable)));
            return 0;
        }));
        var batchUrl = new Option<string>("--url") { Description = "A running service.", DefaultValueFactory = _ => "http://127.0.0.1:5000" };
        var batchClients = new Option<int>("--clients") { Description = "Concurrent interactive clients.", DefaultValueFactory = _ => 1 };
        var batchRequests = new Option<int>("--requests") { Description = "Interactive requests per client, in each run.", DefaultValueFactory = _ => 40 };
        var batchLines = new Option<int>("--batch-lines") { Description = "Lines of the batch that runs during the second run.", DefaultValueFactory = _ => 2000 };
        var batchCandidates = new Option<int>("--candidates") { Description = "Candidates per request and per batch line.", DefaultValueFactory = _ => 3 };
        var batchTokens = new Option<int>("--max-new-tokens") { Description = "Most tokens per candidate.", DefaultValueFactory = _ => 24 };
        var batchJson = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var batches = new Command("batches", "Interactive POST /paraphrase latency (p50, p99) on a running service (scripts/bench-batches.sh starts one), " +
            "alone and while a batch of the same requests runs in the background; the ratio, and the batch's lines/s meanwhile.")
        {
            batchUrl, batchClients, batchRequests, batchLines, batchCandidates, batchTokens, batchJson,
        };
        batches.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            if (parse.GetValue(batchClients) is not (> 0 and <= 256) || parse.GetValue(batchRequests) is not (> 0 and <= 100_000)
                || parse.GetValue(batchLines) is not (> 0 and <= 50_000) || parse.GetValue(batchCandidates) is not (> 0 and <= 8)
                || parse.GetValue(batchTokens) is not (> 0 and <= 256))
                throw new UsageException("--clients must be 1-256, --requests 1-100000, --batch-lines 1-50000, --candidates 1-8 and --max-new-tokens 1-256.");
            var report = await BatchBenchmark.Run(new Uri(parse.GetValue(batchUrl)!), parse.GetValue(batchClients), parse.GetValue(batchRequests),
                parse.GetValue(batchLines), parse.GetValue(batchCandidates), parse.GetValue(batchTokens), line => Console.Error.WriteLine(line), ct);
            Console.WriteLine(parse.GetValue(batchJson) ? JsonSerializer.Serialize(report, s_json) : BatchTable(report));
            return 0;
        }));
        return new Command("bench", "Benchmarks.") { quant, lora, serve, soak, speculation, profile, batches };
    }

    private static string BatchTable(BatchBenchReport r)
    {
        static string Row(string name, InteractiveLatency run) => $"| {name,-22} | {run.Clients,7} | {run.Requests,8} | {run.P50Ms,7:F0} | {run.P99Ms,7:F0} | {run.MeanMs,7:F0} |";
        return $"""
            {r.Url}: interactive POST /paraphrase, {r.Candidates} candidates of up to {r.MaxNewTokens} tokens

            | run                    | clients | requests | p50 ms  | p99 ms  | mean ms |
            |------------------------|---------|----------|---------|---------|---------|
            {Row("alone", r.Alone)}
            {Row("batch running", r.WithBatch)}

            with / without the batch: p50 {r.P50Ratio:F2}x, p99 {r.P99Ratio:F2}x; the batch ({r.BatchId}, {r.BatchLines} lines of the same requests) finished {r.BatchLinesDuringRun} lines meanwhile ({r.BatchLinesPerSecond:F1} lines/s)
            """;
    }

    private static string ServeTable(ServeBenchReport r)
    {
        static string Row(ServeBenchRun run) =>
            $"| {run.Clients,7} | {run.Requests,8} | {run.TokensPerSecond,8:F1} | {run.LatencyP50Ms,7:F0} | {run.LatencyP99Ms,7:F0} | {run.TimeToFirstTokenP50Ms,8:F0} | {run.TimeToFirstTokenP99Ms,8:F0} |";
        return $"""
            {r.Url}: streamed /v1/completions of {r.MaxTokens} tokens

            | clients | requests | tokens/s | p50 ms  | p99 ms  | TTFT p50 | TTFT p99 |
            |---------|----------|----------|---------|---------|----------|----------|
            {Row(r.Single)}
            {Row(r.Concurrent)}

            aggregate throughput, {r.Concurrent.Clients} clients vs 1: {r.ThroughputRatio:F2}x
            """ + (r.WithFineTune is not { } f ? "" : $"""


            while fine-tune {f.JobId} trains on the same model:

            | clients | requests | tokens/s | p50 ms  | p99 ms  | TTFT p50 | TTFT p99 |
            |---------|----------|----------|---------|---------|----------|----------|
            {Row(f.Single)}
            {Row(f.Concurrent)}

            p50 latency of 1 client, with / without the job: {f.LatencyP50Ratio:F2}x; the job took {f.StepsDuringRuns} steps meanwhile ({f.JobTokensPerSecond:F0} training tokens/s)
            """);
    }

    private static string SoakTable(SoakReport r) => $"""
        {r.Url}: {r.Minutes:F1} min at saturation, {r.Clients} clients

        statuses: {string.Join(", ", r.Statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"))}; client disconnects: {r.Disconnects}; no answer: {r.TransportErrors}
        served requests: p50 {r.LatencyP50Ms:F0} ms, p99 {r.LatencyP99Ms:F0} ms
        resident memory: {r.ResidentBytesAfterWarmUp / 1e6:F0} MB after the warm-up, {r.ResidentBytesEnd / 1e6:F0} MB at the end ({r.ResidentGrowth:P1}), {r.ResidentBytesMax / 1e6:F0} MB at most
        """;

    private static string LoraTable(LoraBenchReport r)
    {
        var lines = r.Cases.Select(c =>
            $"| {c.Targets,-13} | {c.BaseTokensPerSecond,13:F1} | {c.MixedTokensPerSecond,24:F1} | {c.Ratio,5:F2} | {c.AdapterMegabytes,10:F1} |");
        return $"""
            {r.Model}: {r.Rows} decode rows, {r.Adapters} adapters of rank {r.Rank}

            | targets       | no adapter tok/s | {r.Adapters} adapters mixed tok/s | ratio | MB/adapter |
            |---------------|------------------|--------------------------|-------|------------|
            {string.Join(Environment.NewLine, lines)}

            loading one all-linear rank-{r.Rank} adapter from its PEFT folder (read, validate, attach): {r.LoadMilliseconds:F1} ms
            """;
    }

    private static string Table(QuantBenchReport r) => $"""
        {r.Model}: {r.Parameters / 1e6:F0}M parameters, {r.Threads} threads, read bandwidth {r.ReadBandwidthGBps:F1} GB/s

        | weights | bytes    | resident | decode tok/s batch 1 | decode tok/s batch 8 |
        |---------|----------|----------|----------------------|----------------------|
        | fp32    | {Mb(r.Fp32.WeightBytes),8} | {Mb(r.Fp32.ResidentBytes),8} | {r.Fp32.TokensPerSecondBatch1,20:F1} | {r.Fp32.TokensPerSecondBatch8,20:F1} |
        | int8    | {Mb(r.Int8.WeightBytes),8} | {Mb(r.Int8.ResidentBytes),8} | {r.Int8.TokensPerSecondBatch1,20:F1} | {r.Int8.TokensPerSecondBatch8,20:F1} |

        int8 / fp32 speed: {r.SpeedupBatch1:F2}x at batch 1, {r.SpeedupBatch8:F2}x at batch 8
        int8 batch 1 vs bandwidth limit: {r.Int8.TokensPerSecondBatch1:F1} / {r.BandwidthLimitTokensPerSecond:F1} tok/s = {r.FractionOfBandwidthLimit:P0} ({Mb(r.Int8.BytesPerToken)} read per token)
        logits, relative L2 error int8 vs fp32: {r.LogitsRelativeError:E2} (dequantize kernel, the GPU path: {r.LogitsRelativeErrorDequantizeKernel:E2})
        with injected activation outliers: {r.LogitsRelativeErrorWithOutliers:E2} (without the outlier pass: {r.LogitsRelativeErrorWithOutliersUnhandled:E2})
        """;

    private static string Mb(long bytes) => $"{bytes / 1e6:F0} MB";

    private static string ProfileTable(StepProfileReport r)
    {
        var lines = r.Parts.Select(p => $"| {p.Part,-44} | {p.MillisecondsPerStep,8:F3} | {p.Share,6:P1} |");
        return $"""
            {r.Model} ({r.Quantization}), batch {r.Batch}: {r.StepMilliseconds:F2} ms per decode step, {r.TokensPerSecond:F1} tokens/s over {r.Steps} steps ({r.HookedStepMilliseconds:F2} ms with the timing hooks the parts below divide)

            | part (own time, without the modules inside) | ms/step  | share  |
            |----------------------------------------------|----------|--------|
            {string.Join(Environment.NewLine, lines)}

            """;
    }

    private static string SpeculationTable(SpeculationBenchReport r)
    {
        var lines = r.Cases.Select(c =>
            $"| {c.Name,-48} | {c.PlainTokensPerSecond,7:F1} | {c.SpeculativeTokensPerSecond,7:F1} | {c.Speedup,5:F2}x | " +
            $"{(double.IsNaN(c.PlainP50Milliseconds) ? "-" : $"{c.PlainP50Milliseconds:F0} / {c.SpeculativeP50Milliseconds:F0}"),15} | " +
            $"{(double.IsNaN(c.FirstTokenP50Milliseconds) ? "-" : $"{c.FirstTokenP50Milliseconds:F0}"),11} | " +
            $"{(double.IsNaN(c.DecodeSpeedup) ? "-" : $"{c.DecodeSpeedup:F2}x"),11} | " +
            $"{(double.IsNaN(c.PlainStepMilliseconds) ? "-" : $"{c.PlainStepMilliseconds:F2} / {c.SpeculativeStepMilliseconds:F2}"),17} | " +
            $"{c.AcceptanceRate,10:P0} | {c.TokensPerStep,10:F2} | {c.Identical,3}/{c.Sources,-3} |");
        return $"""
            {r.Model}{(r.Adapter is null ? "" : $" + {r.Adapter}")}: up to {r.MaxNewTokens} new tokens, drafts of {r.Speculation.FewestDraftTokens} to {r.Speculation.MaxDraftTokens} tokens, n-grams {r.Speculation.MaxNgram}..{r.Speculation.MinNgram}, {r.Speculation.MaxStepTokens} positions per step{(r.Speculation.CostAware ? ", cut to what the measured step cost pays for" : " (budget only)")}

            | run                                              | tok/s   | spec.   | ratio  | p50 ms plain/spec | 1st tok ms  | after 1st   | step ms plain/spec | acceptance | tokens/step | identical |
            |--------------------------------------------------|---------|---------|--------|-------------------|-------------|-------------|--------------------|------------|-------------|-----------|
            {string.Join(Environment.NewLine, lines)}
            {(r.Ceiling is { } ceiling ? Environment.NewLine + "1 request at a time, " + SpeculationBenchmark.Describe(ceiling) : "")}
            """;
    }
}
