using System.CommandLine;
using System.Text;
using ParaphraseService.Cli.Paraphrasing;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// <c>file</c>: paraphrase a file (or stdin), one text per line, into JSONL (one object per input line), with a local
/// model or a running service. For pipelines: the output file appears only when complete; progress goes to stderr.
/// </summary>
internal static class FileCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--in", "-i") { Description = "Text file, one text per line (UTF-8), or - for stdin.", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "JSONL file to write (replaced only once complete), or - for stdout.", DefaultValueFactory = _ => "-" };
        var model = CommonOptions.Model();
        var server = new Option<string?>("--server", "-s") { Description = "A running service (http://host:port): its POST /paraphrase instead of a local model." };
        var adapter = new Option<string?>("--adapter", "-a") { Description = "With --server: an adapter's name (GET /adapters); with a local model: a PEFT adapter folder." };
        var candidates = new Option<int>("--candidates", "-c") { Description = "Candidates sampled per line, 1-8 (copies of the input and repeats are dropped).", DefaultValueFactory = _ => 3 };
        var maxNewTokens = new Option<int>("--max-new-tokens", "-n") { Description = "Most tokens per candidate, 1-256.", DefaultValueFactory = _ => 48 };
        var temperature = new Option<double>("--temperature", "-t") { Description = "Sampling temperature in [0, 2]; 0 is greedy (one candidate).", DefaultValueFactory = _ => 0.8 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling, (0, 1].", DefaultValueFactory = _ => 0.95 };
        var topK = new Option<int>("--top-k") { Description = "Keep only the K most likely tokens; 0 keeps all.", DefaultValueFactory = _ => 0 };
        var repetitionPenalty = new Option<double>("--repetition-penalty") { Description = "In [1, 2]; above 1 discourages repeating the input.", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Candidate i of every line is sampled with seed + i: same seed, same output. Default: drawn and shown." };
        var batchSize = new Option<int>("--batch-size", "-b") { Description = "Lines per batch (per request with --server, at most 32).", DefaultValueFactory = _ => 8 };
        var retries = new Option<int>("--retries") { Description = "With --server: attempts per request on 429, 502-504, refused connections and timeouts (honouring Retry-After).", DefaultValueFactory = _ => 6 };
        var timeout = new Option<int>("--timeout") { Description = "With --server: seconds one attempt may take.", DefaultValueFactory = _ => 300 };
        var batchThreshold = new Option<int>("--batch-threshold")
        {
            Description = "With --server: an input of more lines than this goes through the service's POST /batches (run in the background behind " +
                "interactive requests, surviving a server restart; progress polled), a smaller one through POST /paraphrase. -1: never.",
            DefaultValueFactory = _ => 100,
        };
        var speculate = CommonOptions.Speculate();
        speculate.Description += " With a local model (a server decides for itself).";
        var device = CommonOptions.Device();
        var dtype = CommonOptions.Dtype();
        var quantization = CommonOptions.Quantization();
        var kvCache = CommonOptions.KvCache();

        var command = new Command("file",
            "Paraphrase a file, one text per line, into JSONL: {line, input, candidates: [{text, similarity, novelty, score}], dropped, error} " +
            "per input line. With a local model (--model) or a running service (--server). Exit 1 when a non-blank line failed (the output is still complete).")
        {
            input, output, model, server, adapter, candidates, maxNewTokens, temperature, topP, topK, repetitionPenalty, seed, batchSize,
            retries, timeout, batchThreshold, speculate, device, dtype, quantization, kvCache,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var settings = new ParaphraseSettings
            {
                Candidates = parse.GetValue(candidates),
                MaxNewTokens = parse.GetValue(maxNewTokens),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                TopK = parse.GetValue(topK),
                RepetitionPenalty = parse.GetValue(repetitionPenalty),
                Seed = parse.GetValue(seed) ?? Random.Shared.NextInt64(0, int.MaxValue),
                Adapter = parse.GetValue(adapter),
                Speculate = parse.GetValue(speculate),
            };
            var problems = settings.Problems().ToList();
            var batch = parse.GetValue(batchSize);
            if (batch is < 1 or > ParaphraseSettings.MaxTextsPerRequest) problems.Add($"--batch-size must be 1-{ParaphraseSettings.MaxTextsPerRequest}.");
            if (parse.GetValue(retries) is < 1 or > 100) problems.Add("--retries must be 1-100.");
            if (parse.GetValue(timeout) < 1) problems.Add("--timeout must be at least 1 second.");
            if (parse.GetValue(batchThreshold) < -1) problems.Add("--batch-threshold must be -1 (never) or at least 0.");
            var serverUrl = parse.GetValue(server);
            Uri? serverUri = null;
            if (serverUrl is not null)
            {
                if (parse.GetResult(model) is { Implicit: false })
                    problems.Add("Give --model or --server, not both.");
                if (!Uri.TryCreate(serverUrl.EndsWith('/') ? serverUrl : serverUrl + "/", UriKind.Absolute, out serverUri) || serverUri.Scheme is not ("http" or "https"))
                    problems.Add($"--server must be an http:// or https:// address, not '{serverUrl}'.");
            }
            if (problems.Count > 0)
                throw new UsageException(string.Join(" ", problems));

            var inPath = parse.GetValue(input)!;
            var outPath = parse.GetValue(output)!;
            if (inPath != "-" && !File.Exists(inPath))
                throw new UsageException(Directory.Exists(inPath) ? $"--in '{inPath}' is a folder, not a text file." : $"--in '{inPath}' does not exist.");
            if (outPath != "-" && Path.GetDirectoryName(Path.GetFullPath(outPath)) is { } outFolder && !Directory.Exists(outFolder))
                throw new UsageException($"--out '{outPath}': the folder '{outFolder}' does not exist.");
            if (outPath != "-" && Directory.Exists(outPath))
                throw new UsageException($"--out '{outPath}' is a folder; give a file name.");

            var progressWriter = Console.Error;
            ProgressBar? bar = null;
            void Log(string line)
            {
                bar?.Interrupt();
                progressWriter.WriteLine(line);
            }

            var retry = new ServerRetryOptions { MaxAttempts = parse.GetValue(retries), AttemptTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout)) };
            // With a server, a large input goes as a batch: its lines are all read first (stdin included) to count them.
            List<string>? all = null;
            var threshold = parse.GetValue(batchThreshold);
            if (serverUri is not null && threshold >= 0)
            {
                all = await ReadLinesAsync(inPath, ct);
                if (all.Count > threshold)
                    return await RunBatchesAsync(serverUri, settings, retry, all, outPath, Log, b => bar = b, ct, showSeed: !settings.Greedy && parse.GetValue(seed) is null);
            }

            // Counted (and checked to be UTF-8) before a model loads or a server is called.
            var total = all?.Count ?? (inPath == "-" ? 0 : CountLines(inPath));
            using IParaphraseBackend backend = serverUri is not null
                ? new ServerParaphraser(serverUri, settings, batch, retry, Log)
                : await LocalParaphraser.LoadAsync(parse.GetValue(model)!, CommonOptions.LoadOptions(parse, device, dtype, quantization, kvCache),
                    settings, batch, ProgressReporter.ForDownloads(), warning => Log($"warning: {warning}"), ct);
            if (backend is LocalParaphraser)
                Log($"model: {backend.Description}");
            if (!settings.Greedy && parse.GetValue(seed) is null)
                Log($"seed: {settings.Seed} (--seed {settings.Seed} repeats this run)");

            bar = new ProgressBar("file", total, "lines");
            using TextReader reader = all is not null
                ? new StringReader(all.Count == 0 ? "" : string.Join('\n', all) + "\n")
                : inPath == "-"
                    ? new StreamReader(Console.OpenStandardInput(), StrictUtf8)
                    : new StreamReader(inPath, StrictUtf8, detectEncodingFromByteOrderMarks: true);
            FileSummary summary;
            if (outPath == "-")
            {
                await using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { NewLine = "\n" };
                summary = await FileParaphraser.RunAsync(reader, stdout, backend, batch, bar, ct);
            }
            else
            {
                summary = await AtomicFile.WriteAsync(outPath, writer => FileParaphraser.RunAsync(reader, writer, backend, batch, bar, ct));
            }

            if (backend is ServerParaphraser)
                Log($"server: {backend.Description}");
            Log($"done: {summary.Lines} lines, {summary.Paraphrased} paraphrased, {summary.Empty} empty, {summary.Failed} failed{(outPath == "-" ? "" : $"; wrote {outPath}")}");
            if (summary.Failed > 0)
            {
                Log($"error: {summary.Failed} of {summary.Lines} lines failed (their \"error\" field says why)");
                return CliFailure.Failed;
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The whole input with a server's batch: POST /batches, progress on stderr, the same output as the direct path.</summary>
    private static async Task<int> RunBatchesAsync(Uri server, ParaphraseSettings settings, ServerRetryOptions retry, List<string> lines, string outPath,
        Action<string> log, Action<ProgressBar> setBar, CancellationToken ct, bool showSeed)
    {
        if (showSeed)
            log($"seed: {settings.Seed} (--seed {settings.Seed} repeats this run)");
        using var batches = new ServerBatch(server, settings, retry, log);
        var bar = new ProgressBar("file", lines.Count, "lines");
        setBar(bar);
        FileSummary summary;
        if (outPath == "-")
        {
            await using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { NewLine = "\n" };
            summary = await batches.RunAsync(lines, stdout, bar, ct);
        }
        else
        {
            summary = await AtomicFile.WriteAsync(outPath, writer => batches.RunAsync(lines, writer, bar, ct));
        }
        log($"server: {batches.Description}, through POST /batches");
        log($"done: {summary.Lines} lines, {summary.Paraphrased} paraphrased, {summary.Empty} empty, {summary.Failed} failed{(outPath == "-" ? "" : $"; wrote {outPath}")}");
        if (summary.Failed > 0)
        {
            log($"error: {summary.Failed} of {summary.Lines} lines failed (their \"error\" field says why)");
            return CliFailure.Failed;
        }
        return 0;
    }

    // Invalid UTF-8 is refused, not read as U+FFFD: a paraphrase of replacement characters would pass for a result.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Every line of the input (a file, or stdin for -), as the direct path reads them.</summary>
    private static async Task<List<string>> ReadLinesAsync(string path, CancellationToken ct)
    {
        using var reader = path == "-"
            ? new StreamReader(Console.OpenStandardInput(), StrictUtf8)
            : new StreamReader(path, StrictUtf8, detectEncodingFromByteOrderMarks: true);
        var lines = new List<string>();
        while (await ReadLine(reader, path, lines.Count, ct) is { } line)
            lines.Add(line);
        return lines;
    }

    /// <summary>
    /// The lines of a file, read once before the run, block by block (a line is never held whole, however long): a line
    /// that is not UTF-8 is refused here, naming it exactly (a text reader decodes ahead, so it can only say from where on).
    /// </summary>
    private static long CountLines(string path)
    {
        using var stream = File.OpenRead(path);
        var decoder = StrictUtf8.GetDecoder();
        var buffer = new byte[64 * 1024];
        var chars = new char[StrictUtf8.GetMaxCharCount(buffer.Length)];
        long lines = 0;
        var open = false; // the last block ended inside a line
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            var block = buffer.AsSpan(0, read);
            Decode(block, flush: false);
            lines += block.Count((byte)'\n');
            open = block[^1] != (byte)'\n';
        }
        Decode([], flush: true);
        return lines + (open ? 1 : 0);

        void Decode(ReadOnlySpan<byte> block, bool flush)
        {
            try
            {
                decoder.GetChars(block, chars, flush);
            }
            catch (DecoderFallbackException e)
            {
                // Index: where the bad bytes start in this block (below 0 when they began in the one before).
                var before = block[..Math.Clamp(e.Index, 0, block.Length)].Count((byte)'\n');
                throw new UsageException($"{path}: line {lines + before + 1} is not UTF-8 text.");
            }
        }
    }

    private static async ValueTask<string?> ReadLine(StreamReader reader, string path, long linesRead, CancellationToken ct)
    {
        try
        {
            return await reader.ReadLineAsync(ct);
        }
        catch (DecoderFallbackException e)
        {
            // The decoder reads ahead in blocks: the line is where the bad bytes are, or a little after.
            var bytes = e.BytesUnknown is { Length: > 0 } unknown ? $" (bytes {Convert.ToHexString(unknown)})" : "";
            throw new UsageException($"{(path == "-" ? "stdin" : path)} is not UTF-8 text: an invalid byte sequence{bytes} from line {linesRead + 1} on.");
        }
    }
}

/// <summary>Writes a file through a temporary one beside it, moved into place only when the writing succeeded.</summary>
internal static class AtomicFile
{
    public static async Task<T> WriteAsync<T>(string path, Func<TextWriter, Task<T>> write)
    {
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            T result;
            await using (var writer = new StreamWriter(temporary, append: false, new UTF8Encoding(false)) { NewLine = "\n" })
            {
                result = await write(writer);
                await writer.FlushAsync();
                if (writer.BaseStream is FileStream file)
                    file.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
            return result;
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }
}
