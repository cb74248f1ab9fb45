using System.Diagnostics;
using ParaphraseService.Cli.Commands;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Cli.Benchmarks;

/// <param name="Part">A module type (its own time, without the modules inside it) or what runs outside the model.</param>
public sealed record StepProfilePart(string Part, double MillisecondsPerStep, double Share);

/// <param name="StepMilliseconds">A decode step's time without the timing hooks: what the step costs in use.</param>
/// <param name="TokensPerSecond">Rows × steps over the time of the steps without the timing hooks.</param>
/// <param name="HookedStepMilliseconds">The same step with a timing hook on every module: the time <paramref name="Parts"/> divide.</param>
public sealed record StepProfileReport(string Model, string Quantization, int Batch, int Steps, double StepMilliseconds, double TokensPerSecond,
    double HookedStepMilliseconds, IReadOnlyList<StepProfilePart> Parts);

/// <summary>
/// Where one decode step's time goes, for the path every generation takes (the continuous batcher's step: the CLI's
/// <c>generate</c> and the service's scheduler run it alike): forward hooks on every module time it, and each module
/// type is charged its own time, without the modules inside it (a GEMM layer's own time is its matrix product; an
/// attention module's own time is rotary, the cache write, the scores, softmax and the weighted sum; a block's own time
/// is its residual adds). What the model's forward does not cover (sampling, drafting, building the step's ids, mask
/// and positions) is "outside the forward". CPU ops are synchronous, so wall-clock time is the op's time; the hooks
/// themselves add a few microseconds per module, so the step's own speed is timed first, over as many steps without them.
/// </summary>
public static class StepProfiler
{
    public static StepProfileReport Run(LoadedModel loaded, int batch, int steps, Action<string> log)
    {
        var prompt = loaded.Tokenizer.Encode("The meeting has been moved to Thursday afternoon, and everyone on the team has been told.");
        // The prompt, four warm-up steps, the steps timed without hooks, one to start the hooks, the steps timed with them.
        var length = prompt.Count + 2 * steps + 8;
        if (length > loaded.Config.MaxPositions)
            throw new UsageException(
                $"--steps {steps} does not fit the model's context of {loaded.Config.MaxPositions} tokens: the profile times them twice (without and with its hooks) after a {prompt.Count}-token prompt; at most {(loaded.Config.MaxPositions - prompt.Count - 8) / 2}.");
        var options = new GenerationOptions { Greedy = true, MaxNewTokens = 2 * steps + 8, EosTokenId = -1 };
        using var batcher = new ContinuousBatcher(loaded.Model, loaded.Tokenizer, batch, length + 8);
        for (var r = 0; r < batch; r++) batcher.Admit(prompt, options);
        for (var warm = 0; warm < 4; warm++) batcher.Step(); // the prefill and warm-up steps
        var clock = Stopwatch.StartNew();
        for (var s = 0; s < steps; s++) batcher.Step();
        var plain = clock.Elapsed.TotalMilliseconds;

        var timer = new ModuleTimer();
        var handles = loaded.Model.modules().Prepend(loaded.Model).SelectMany(timer.Hook).ToList();
        try
        {
            batcher.Step(); // the hooks' own first calls
            timer.Reset();
            clock.Restart();
            for (var s = 0; s < steps; s++) batcher.Step();
            var hooked = clock.Elapsed.TotalMilliseconds;
            var parts = timer.Totals.Select(t => new StepProfilePart(t.Key, t.Value / steps, t.Value / hooked)).ToList();
            var outside = hooked - timer.Totals.Values.Sum();
            parts.Add(new StepProfilePart("outside the forward (sampling, step inputs)", outside / steps, outside / hooked));
            var quantization = loaded.Quantization.ToString().ToLowerInvariant() + (loaded.Int8Compute is { } compute ? $": {compute}" : "")
                + $"; KV cache {loaded.KvCacheDtype.ToString().ToLowerInvariant()}";
            var report = new StepProfileReport(loaded.Source, quantization, batch, steps, plain / steps,
                batch * steps / (plain / 1000), hooked / steps, parts.OrderByDescending(p => p.MillisecondsPerStep).ToList());
            log($"batch {batch}: {report.StepMilliseconds:F2} ms per step ({report.HookedStepMilliseconds:F2} with the timing hooks), {report.TokensPerSecond:F1} tokens/s");
            return report;
        }
        finally
        {
            foreach (var remove in handles) remove();
        }
    }

    /// <summary>Inclusive times on a stack of running modules; each module type gets its exclusive time.</summary>
    private sealed class ModuleTimer
    {
        private readonly Stack<(string Type, long Start, long Children)> _running = new();
        public Dictionary<string, double> Totals { get; } = [];

        public void Reset() => Totals.Clear();

        /// <summary>Times a module from now on; returns what removes its hooks.</summary>
        public IEnumerable<Action> Hook(nn.Module module) => module switch
        {
            nn.Module<Tensor, Tensor> m => Timed(m),
            nn.Module<AttentionInput, Tensor> m => Timed(m),
            nn.Module<BlockInput, Tensor> m => Timed(m),
            nn.Module<CausalLMInput, Tensor> m => Timed(m),
            _ => [],
        };

        private IEnumerable<Action> Timed<T>(nn.Module<T, Tensor> module)
        {
            var pre = module.register_forward_pre_hook((_, input) => Enter(module, input));
            var post = module.register_forward_hook((_, _, output) => Leave(output));
            return [() => pre.remove(), () => post.remove()];
        }

        private T Enter<T>(nn.Module module, T input)
        {
            _running.Push((module.GetType().Name, Stopwatch.GetTimestamp(), 0));
            return input;
        }

        private Tensor Leave(Tensor output)
        {
            var (type, start, children) = _running.Pop();
            var inclusive = Stopwatch.GetTimestamp() - start;
            Totals[type] = Totals.GetValueOrDefault(type) + (inclusive - children) * 1000.0 / Stopwatch.Frequency;
            if (_running.TryPop(out var parent))
                _running.Push(parent with { Children = parent.Children + inclusive });
            return output;
        }
    }
}
