using System.Diagnostics;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Cli.Benchmarks;

/// <param name="Targets">"q_proj,v_proj" (PEFT's default) or "all-linear".</param>
public sealed record LoraBenchCase(string Targets, double BaseTokensPerSecond, double MixedTokensPerSecond, double Ratio, double AdapterMegabytes);

/// <param name="LoadMilliseconds">Reading one all-linear adapter's PEFT folder, validating it and attaching it.</param>
public sealed record LoraBenchReport(string Model, int Rows, int Adapters, int Rank, IReadOnlyList<LoraBenchCase> Cases, double LoadMilliseconds);

/// <summary>
/// 16 decode rows spread over 4 rank-16 adapters against the same 16 rows on the bare int8 base, on the 250M bench model.
/// </summary>
public static class LoraBenchmark
{
    private const int Rows = 16;
    private const int AdapterCount = 4;
    private const int Rank = 16;

    public static LoraBenchReport Run(int steps, Action<string> log)
    {
        var config = CheckpointPresets.Bench250MConfig;
        using var model = QuantBenchmark.Build(config, Quantization.Int8, Int8Options.Default, withOutliers: false, new LoraRouting());
        using var registry = new AdapterRegistry(model, AdapterCount);
        var cases = new List<LoraBenchCase>();
        foreach (var (label, filter) in new (string, Func<string, bool>)[]
                 {
                     ("q_proj,v_proj", path => path.EndsWith("q_proj", StringComparison.Ordinal) || path.EndsWith("v_proj", StringComparison.Ordinal)),
                     ("all-linear", _ => true),
                 })
        {
            var shapes = registry.Targets.Where(t => filter(t.Key)).ToDictionary(t => t.Key, t => t.Value);
            for (var a = 0; a < AdapterCount; a++)
                registry.Load(TrainedLookingAdapter($"adapter-{a}", shapes, seed: a));
            var adapters = Enumerable.Range(0, Rows).Select(r => registry.Get($"adapter-{r % AdapterCount}")).ToArray();

            var bare = DecodeTimer.TokensPerSecond(model, Rows, steps);
            var mixed = DecodeTimer.TokensPerSecond(model, Rows, steps, adapters);
            var megabytes = registry.Get("adapter-0")!.Bytes / 1e6;
            log($"{label}: {bare:F1} tokens/s bare, {mixed:F1} with 4 adapters over 16 rows ({mixed / bare:P0}); {megabytes:F1} MB per adapter");
            cases.Add(new LoraBenchCase(label, bare, mixed, mixed / bare, megabytes));
        }
        return new LoraBenchReport("bench-250m, int8 base", Rows, AdapterCount, Rank, cases, LoadFromFiles(registry));
    }

    /// <summary>Saves an all-linear adapter in PEFT format, then times reading it back into the registry (best of three).</summary>
    private static double LoadFromFiles(AdapterRegistry registry)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"lora-bench-{Guid.NewGuid():N}");
        try
        {
            var generator = new Generator(42, CPU);
            using var scope = NewDisposeScope();
            var modules = registry.Targets.ToDictionary(t => t.Key,
                t => new LoraWeights(randn([Rank, t.Value.In], generator: generator), randn([t.Value.Out, Rank], generator: generator)));
            var config = new PeftLoraConfig { R = Rank, LoraAlpha = 32, TargetModules = PeftTargetModules.AllLinear };
            using (var peft = PeftAdapter.Create("from-files", config, modules, registry.Target))
                PeftAdapterFiles.Save(folder, peft);
            var best = double.MaxValue;
            for (var i = 0; i < 3; i++)
            {
                var clock = Stopwatch.StartNew();
                registry.LoadFolder(folder);
                best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
                registry.Unload("from-files");
            }
            return best;
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    // Fresh adapters have B = 0; give B values so the deltas are real work on real numbers.
    private static LoraAdapter TrainedLookingAdapter(string name, IReadOnlyDictionary<string, (long In, long Out)> shapes, long seed)
    {
        var generator = new Generator((ulong)seed + 100, CPU);
        var weights = shapes.ToDictionary(s => s.Key,
            s => (randn([Rank, s.Value.In], generator: generator) * 0.02f, randn([s.Value.Out, Rank], generator: generator) * 0.02f));
        var adapter = LoraAdapter.FromWeights(name, 2.0, 0, weights, CPU);
        foreach (var (a, b) in weights.Values)
        {
            a.Dispose();
            b.Dispose();
        }
        return adapter;
    }
}
