using System.Diagnostics;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Cli.Benchmarks;

/// <summary>One way of decoding the sources: without speculation and with it, side by side.</summary>
/// <param name="Identical">Sources whose output was the same token for token with and without speculation.</param>
/// <param name="FirstTokenP50Milliseconds">One at a time: the median time to the first token (the prompt's forward and its
/// choice), which speculation cannot shorten.</param>
/// <param name="DecodeSpeedup">One at a time: the speedup of what follows the first token (tokens/s after it).</param>
/// <param name="PlainStepMilliseconds">One at a time: the mean time of a decode step after the first token, without
/// speculation (one token per step).</param>
/// <param name="SpeculativeStepMilliseconds">The same with speculation: a step that verifies a draft computes more positions.</param>
public sealed record SpeculationBenchCase(
    string Name, int Sources, int Tokens, double PlainTokensPerSecond, double SpeculativeTokensPerSecond, double Speedup,
    double PlainP50Milliseconds, double SpeculativeP50Milliseconds, double AcceptanceRate, double TokensPerStep, int Identical,
    double FirstTokenP50Milliseconds = double.NaN, double DecodeSpeedup = double.NaN,
    double PlainStepMilliseconds = double.NaN, double SpeculativeStepMilliseconds = double.NaN);

/// <param name="Ceiling">The one-at-a-time run's greedy outputs replayed with nothing but forward passes costing time.</param>
public sealed record SpeculationBenchReport(string Model, string? Adapter, int MaxNewTokens, SpeculationOptions Speculation, IReadOnlyList<SpeculationBenchCase> Cases,
    SpeculationCeilingReport? Ceiling = null);

/// <summary>
/// Prompt-lookup speculation against plain decoding on the same paraphrase prompts, in one run, alternating the two so
/// that drift on a shared machine hits both: one request at a time (tokens/s and per-request latency), and
/// <c>clients</c> requests at once through the continuous batcher the service schedules (aggregate tokens/s). Optionally
/// the random-weight bench-250m model, where drafts are rarely right: what speculation costs when it does not help.
/// </summary>
public static class SpeculationBenchmark
{
    // Runs of the concurrent case each way (one to two seconds each on the demo model).
    private const int ConcurrentRounds = 6;

    public static SpeculationBenchReport Run(LoadedModel loaded, LoraAdapter? adapter, PromptTemplate template, IReadOnlyList<string> sources,
        int maxNewTokens, int clients, bool withBenchModel, SpeculationOptions speculation, Action<string> log)
    {
        var prompts = sources.Select(s => (IReadOnlyList<int>)loaded.Tokenizer.Encode(template.Render(s))).ToList();
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = maxNewTokens, StopSequences = [template.EndMarker] };
        var (oneAtATime, outputs) = OneAtATime("1 request at a time, greedy", loaded.Model, loaded.Tokenizer, prompts, greedy, adapter, speculation, log);
        var ceiling = SpeculationCeiling.Measure(loaded.Model, adapter, prompts, outputs, speculation);
        log(Describe(ceiling));
        var cases = new List<SpeculationBenchCase>
        {
            oneAtATime,
            Concurrent($"{clients} concurrent requests, sampled", loaded.Model, loaded.Tokenizer, prompts, maxNewTokens, template, adapter, clients, speculation, log),
        };
        if (withBenchModel)
        {
            using var bench = QuantBenchmark.Build(CheckpointPresets.Bench250MConfig, Quantization.Int8, Int8Options.Default, withOutliers: false);
            var tokenizer = Gpt2Tokenizer.BuiltIn();
            var benchPrompts = sources.Take(8).Select(s => (IReadOnlyList<int>)tokenizer.Encode(PromptTemplate.FineTuneDefault.Render(s))).ToList();
            cases.Add(OneAtATime("bench-250m int8 (random weights), 1 at a time", bench, tokenizer, benchPrompts, greedy with { MaxNewTokens = 24 }, null,
                speculation, log).Case);
        }
        return new SpeculationBenchReport(loaded.Source, adapter?.Name, maxNewTokens, speculation, cases, ceiling);
    }

    /// <returns>The figures, and the greedy outputs without speculation.</returns>
    private static (SpeculationBenchCase Case, List<IReadOnlyList<int>> Outputs) OneAtATime(string name, CausalLM model, Gpt2Tokenizer tokenizer, IReadOnlyList<IReadOnlyList<int>> prompts,
        GenerationOptions options, LoraAdapter? adapter, SpeculationOptions speculation, Action<string> log)
    {
        var plain = new TextGenerator(model, tokenizer);
        var speculative = new TextGenerator(model, tokenizer, speculation);
        // Warm-up: first calls pay for allocations and kernel selection.
        plain.Generate(prompts[0], options, adapter: adapter);
        speculative.Generate(prompts[0], options, adapter: adapter);
        var (plainTimes, specTimes) = (new List<double>(), new List<double>());
        // Each run's own time to its first token, so what follows it is measured within one run, never as a
        // difference between two runs (which noise can make negative).
        var (plainFirst, specFirst) = (new List<double>(), new List<double>());
        var (tokens, identical) = (0, 0);
        var outputs = new List<IReadOnlyList<int>>();
        var (work, plainWork) = (new SpeculationStats(0, 0, 0, 0, 0), new SpeculationStats(0, 0, 0, 0, 0));
        for (var i = 0; i < prompts.Count; i++)
        {
            // Alternate which goes first, so neither always runs on a warmer cache.
            GenerationResult? a = null, b = null;
            foreach (var spec in i % 2 == 0 ? new[] { false, true } : [true, false])
            {
                var generator = spec ? speculative : plain;
                var clock = Stopwatch.StartNew();
                var output = generator.Generate(prompts[i], options, adapter: adapter);
                (spec ? specTimes : plainTimes).Add(clock.Elapsed.TotalSeconds);
                (spec ? specFirst : plainFirst).Add(generator.LastTimeToFirstToken.TotalSeconds);
                if (spec)
                {
                    b = output;
                    work = work.Plus(speculative.LastStats!);
                }
                else
                {
                    a = output;
                    plainWork = plainWork.Plus(plain.LastStats!);
                }
            }
            tokens += a!.GeneratedIds.Count;
            outputs.Add(a.GeneratedIds);
            if (a.GeneratedIds.SequenceEqual(b!.GeneratedIds)) identical++;
        }
        var (plainAfter, specAfter) = (plainTimes.Sum() - plainFirst.Sum(), specTimes.Sum() - specFirst.Sum());
        var measured = Case(name, prompts.Count, tokens, plainTimes.Sum(), specTimes.Sum(), Median(plainTimes), Median(specTimes), work, identical) with
        {
            FirstTokenP50Milliseconds = Median([.. plainFirst, .. specFirst]) * 1000,
            DecodeSpeedup = plainAfter / specAfter,
            PlainStepMilliseconds = plainAfter * 1000 / Math.Max(1, plainWork.Steps),
            SpeculativeStepMilliseconds = specAfter * 1000 / Math.Max(1, work.Steps),
        };
        log(Describe(measured));
        return (measured, outputs);
    }

    private static SpeculationBenchCase Concurrent(string name, CausalLM model, Gpt2Tokenizer tokenizer, IReadOnlyList<IReadOnlyList<int>> prompts,
        int maxNewTokens, PromptTemplate template, LoraAdapter? adapter, int clients, SpeculationOptions speculation, Action<string> log)
    {
        GenerationOptions Sampled(int i) => new()
        {
            MaxNewTokens = maxNewTokens, Temperature = 0.8, TopP = 0.95, Seed = i, StopSequences = [template.EndMarker],
        };
        var capacity = prompts.Max(p => p.Count) + maxNewTokens;
        // One step cost and one record of what drafts yielded for every run, as the service keeps one batcher (and what it learned) for its lifetime.
        var (stepCost, acceptance) = (new MeasuredStepCost(), new DraftAcceptance());
        (double Seconds, List<GenerationResult> Results, SpeculationStats Work) Drive(SpeculationOptions? with)
        {
            using var batcher = new ContinuousBatcher(model, tokenizer, clients, capacity, with, stepCost, acceptance);
            var results = new GenerationResult[prompts.Count];
            var owner = new Dictionary<int, int>();
            var next = 0;
            var clock = Stopwatch.StartNew();
            while (next < prompts.Count || batcher.ActiveCount > 0)
            {
                // Every client sends its next request as soon as its last one is answered.
                while (next < prompts.Count && batcher.FreeSlots > 0)
                {
                    owner[batcher.Admit(prompts[next], Sampled(next), adapter)] = next;
                    next++;
                }
                foreach (var update in batcher.Step().Where(u => u.Finished))
                    results[owner[update.Slot]] = update.Result ?? throw update.Error!;
            }
            return (clock.Elapsed.TotalSeconds, results.ToList(), batcher.Stats);
        }
        Drive(null); // warm-up
        // Rounds in alternating order (plain first, then speculative first, ...), so that neither always runs on a warmer
        // cache and this machine's drift of 10-40% over a minute falls on both.
        List<(double Seconds, List<GenerationResult> Results, SpeculationStats Work)> plain = [], spec = [];
        for (var round = 0; round < ConcurrentRounds; round++)
            foreach (var speculative in round % 2 == 0 ? new[] { false, true } : [true, false])
                (speculative ? spec : plain).Add(Drive(speculative ? speculation : null));
        // Every round generates the same tokens (seeded, and the same either way): the last round's stand for all.
        var tokens = plain[^1].Results.Sum(r => r.GeneratedIds.Count);
        var identical = plain[^1].Results.Zip(spec[^1].Results).Count(p => p.First.GeneratedIds.SequenceEqual(p.Second.GeneratedIds));
        var result = Case(name, prompts.Count, tokens, plain.Average(r => r.Seconds), spec.Average(r => r.Seconds), double.NaN, double.NaN,
            spec[^1].Work, identical);
        log(Describe(result));
        return result;
    }

    private static SpeculationBenchCase Case(string name, int sources, int tokens, double plainSeconds, double specSeconds, double plainP50, double specP50,
        SpeculationStats work, int identical) =>
        new(name, sources, tokens, tokens / plainSeconds, tokens / specSeconds, plainSeconds / specSeconds, plainP50 * 1000, specP50 * 1000,
            work.AcceptanceRate, work.TokensPerStep, identical);

    private static string Describe(SpeculationBenchCase c) =>
        $"{c.Name}: {c.PlainTokensPerSecond:F1} -> {c.SpeculativeTokensPerSecond:F1} tokens/s ({c.Speedup:F2}x)" +
        (double.IsNaN(c.PlainP50Milliseconds) ? "" : $", p50 {c.PlainP50Milliseconds:F0} -> {c.SpeculativeP50Milliseconds:F0} ms" +
            $" (first token {c.FirstTokenP50Milliseconds:F0} ms; after it {c.DecodeSpeedup:F2}x;" +
            $" a step {c.PlainStepMilliseconds:F2} -> {c.SpeculativeStepMilliseconds:F2} ms)") +
        $"; acceptance {c.AcceptanceRate:P0}, {c.TokensPerStep:F2} tokens/step; identical {c.Identical}/{c.Sources}";

    /// <summary>The replay's figures in a line.</summary>
    public static string Describe(SpeculationCeilingReport c) =>
        $"replayed with only forward passes costing time (a step of 1..{c.StepCost.Count - 1} positions " +
        $"{string.Join(" / ", c.StepCost.Skip(1).Select(x => x.ToString("F2")))} times one; a prompt's pass {c.FirstTokenSteps:F1} steps): " +
        $"the service's drafter {c.ServiceRule:F2}x, each draft cut to what is accepted {c.ExactLength:F2}x, best occurrence and length {c.Oracle:F2}x";

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[sorted.Count / 2];
    }
}
