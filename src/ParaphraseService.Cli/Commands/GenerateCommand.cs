using System.CommandLine;
using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>generate</c>: continue a prompt with a model folder, a hub model or the demo model.</summary>
internal static class GenerateCommand
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        // Generated text is shown as is (quotes, angle brackets, non-ASCII), not as \u escapes; it is still valid JSON.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.Dtype();
        var quantization = CommonOptions.Quantization();
        var kvCache = CommonOptions.KvCache();
        var prompt = new Option<string>("--prompt", "-p") { Description = "The text to continue.", Required = true };
        var maxNewTokens = new Option<int>("--max-new-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 32 };
        var greedy = new Option<bool>("--greedy") { Description = "Always take the most likely token (no sampling)." };
        var temperature = new Option<double>("--temperature", "-t") { Description = "Sampling temperature (> 0).", DefaultValueFactory = _ => 1.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling: keep tokens up to this cumulative probability (0, 1].", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Keep only the K most likely tokens; 0 keeps all.", DefaultValueFactory = _ => 0 };
        var repetitionPenalty = new Option<double>("--repetition-penalty") { Description = "Penalise tokens already present (> 1 discourages repeats).", DefaultValueFactory = _ => 1.0 };
        var stop = new Option<string[]>("--stop") { Description = "Stop when this text is produced (repeatable).", AllowMultipleArgumentsPerToken = false };
        var seed = new Option<long?>("--seed") { Description = "Seed for sampling: same seed, same output." };
        var json = new Option<bool>("--json") { Description = "Print prompt ids, generated ids and text as JSON." };
        var adapter = new Option<string?>("--adapter", "-a") { Description = "A LoRA adapter folder in Hugging Face PEFT format to apply to the model." };
        var speculate = CommonOptions.Speculate();
        var outlierFactor = CommonOptions.Int8OutlierFactor();
        var stats = new Option<bool>("--stats") { Description = "Report load time, generation speed and peak resident memory (stderr; in the JSON too)." };

        var command = new Command("generate", "Continue a prompt with GPT-J.")
        {
            model, prompt, maxNewTokens, greedy, temperature, topP, topK, repetitionPenalty, stop, seed, json, stats, speculate, adapter, device, dtype,
            quantization, kvCache, outlierFactor,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var samplingGiven = new Option[] { temperature, topP, topK }.Where(o => parse.GetResult(o) is { Implicit: false }).ToList();
            if (parse.GetValue(greedy) && samplingGiven.Count > 0)
                throw new ArgumentException($"--greedy cannot be combined with {string.Join(", ", samplingGiven.Select(o => o.Name))}.");
            var isGreedy = parse.GetValue(greedy);
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNewTokens),
                Greedy = isGreedy,
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                TopK = parse.GetValue(topK),
                RepetitionPenalty = parse.GetValue(repetitionPenalty),
                StopSequences = parse.GetValue(stop) ?? [],
                // Sampling without a seed draws one and reports it, so any run can be repeated.
                Seed = isGreedy ? null : parse.GetValue(seed) ?? Random.Shared.NextInt64(0, int.MaxValue),
            };
            options.Validate();
            var text = parse.GetValue(prompt)!;
            if (string.IsNullOrEmpty(text))
                throw new UsageException("--prompt must not be empty.");

            var clock = Stopwatch.StartNew();
            using var loaded = await ModelSource.LoadAsync(
                parse.GetValue(model)!, CommonOptions.LoadOptions(parse, device, dtype, quantization, kvCache) with
                {
                    MaxResidentAdapters = parse.GetValue(adapter) is null ? 0 : 1,
                    Int8 = CommonOptions.Int8(parse, outlierFactor),
                },
                ProgressReporter.ForDownloads(), ct);
            if (loaded.Notice is { } notice)
                await Console.Error.WriteLineAsync($"note: {notice}");

            LoraAdapter? lora = null;
            if (parse.GetValue(adapter) is { } adapterFolder)
            {
                var (loadedAdapter, _, warnings) = loaded.Adapters!.LoadFolder(adapterFolder);
                lora = loadedAdapter;
                foreach (var warning in warnings)
                    await Console.Error.WriteLineAsync($"warning: {warning}");
            }
            var loadSeconds = clock.Elapsed.TotalSeconds;
            var promptIds = loaded.Tokenizer.Encode(text);
            clock.Restart();
            var generator = loaded.CreateGenerator(parse.GetValue(speculate) ? new SpeculationOptions() : null);
            var result = generator.Generate(promptIds, options, ct, lora);
            var generateSeconds = clock.Elapsed.TotalSeconds;
            var memory = ProcessMemory.Read();
            var figures = parse.GetValue(stats)
                ? new GenerationStats(loadSeconds, generateSeconds, result.GeneratedIds.Count / generateSeconds, memory.PeakResidentBytes, memory.ResidentBytes)
                : null;
            if (figures is not null)
                await Console.Error.WriteLineAsync(
                    $"stats: load {figures.LoadSeconds:F1} s, {result.GeneratedIds.Count} tokens in {figures.GenerateSeconds:F2} s " +
                    $"({figures.TokensPerSecond:F2} tokens/s including the prompt), peak resident {figures.PeakResidentBytes / 1073741824.0:F2} GiB" +
                    (parse.GetValue(speculate) && generator.LastStats is { } work
                        ? $"; {work.Steps} decode steps, {work.TokensPerStep:F2} tokens per step, {work.Accepted}/{work.Drafted} draft tokens accepted"
                        : ""));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    Model = loaded.Source,
                    Demo = loaded.IsDemo,
                    Quantization = loaded.Quantization.ToString().ToLowerInvariant(),
                    Adapter = lora?.Name,
                    Notice = loaded.Notice,
                    Prompt = text,
                    PromptIds = result.PromptIds,
                    GeneratedIds = result.GeneratedIds,
                    Text = result.Text,
                    result.FinishReason,
                    options.Seed,
                    Stats = figures,
                }, s_json));
            }
            else
            {
                Console.WriteLine(result.Text);
            }
            return 0;
        }));
        return command;
    }
}

/// <param name="TokensPerSecond">Generated tokens over the whole generation time, prompt processing included.</param>
internal sealed record GenerationStats(double LoadSeconds, double GenerateSeconds, double TokensPerSecond, long PeakResidentBytes, long ResidentBytes);
