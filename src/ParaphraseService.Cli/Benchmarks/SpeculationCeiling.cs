using System.Diagnostics;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Cli.Benchmarks;

/// <summary>How far speculation could go with nothing but forward passes costing time.</summary>
/// <param name="StepCost">A decode step's time by its positions (index 1 to the widest step), relative to one position.</param>
/// <param name="FirstTokenSteps">A prompt's pass (the median prompt), in one-position steps.</param>
/// <param name="ServiceRule">Whole requests' speedup with the service's drafter and draft planner, replayed.</param>
/// <param name="ExactLength">The same occurrences, each draft cut to exactly the tokens that will be accepted.</param>
/// <param name="Oracle">The occurrence and length that are right for longest at every step.</param>
public sealed record SpeculationCeilingReport(IReadOnlyList<double> StepCost, double FirstTokenSteps, double ServiceRule, double ExactLength, double Oracle);

/// <summary>
/// The greedy outputs of a run replayed under the measured cost of a step by its positions: what prompt lookup gives
/// when nothing but the forward passes costs time, with the service's own drafter and planner, with each draft cut to
/// what will be accepted (knowing the future), and with an oracle that also picks the best occurrence. A measured
/// speedup below the first is overhead; a target above the last is beyond prompt lookup on this model and machine.
/// </summary>
public static class SpeculationCeiling
{
    // Rounds of the step-cost measurement (medians taken): as many as fit in the budget, within these bounds (a slow
    // build or machine measures fewer; 120 take about 1.5 s on the demo model here).
    private const int MinRounds = 10, MaxRounds = 120;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(4);

    public static SpeculationCeilingReport Measure(CausalLM model, LoraAdapter? adapter, IReadOnlyList<IReadOnlyList<int>> prompts,
        IReadOnlyList<IReadOnlyList<int>> outputs, SpeculationOptions speculation)
    {
        var median = prompts.OrderBy(p => p.Count).ElementAt(prompts.Count / 2);
        var (stepCost, firstToken) = StepCosts(model, adapter, median, speculation.MaxDraftTokens + 1);
        return Replay(prompts, outputs, stepCost, firstToken, speculation);
    }

    /// <summary>The replay alone, under a given cost of a step by its positions (index 1 on) and of a prompt's pass.</summary>
    internal static SpeculationCeilingReport Replay(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> outputs,
        IReadOnlyList<double> stepCost, double firstToken, SpeculationOptions speculation)
    {
        var cost = new TableCost(stepCost);
        double plain = 0, service = 0, exact = 0, oracle = 0;
        // One record of what drafts yielded for the whole run, as the service keeps one.
        var acceptance = new DraftAcceptance();
        for (var s = 0; s < prompts.Count; s++)
        {
            var output = outputs[s];
            plain += firstToken + output.Count - 1;
            service += ReplayOne(prompts[s], output, stepCost, firstToken, ServiceDraft(speculation, acceptance, cost));
            exact += ReplayOne(prompts[s], output, stepCost, firstToken, ExactDraft(speculation));
            oracle += ReplayOne(prompts[s], output, stepCost, firstToken,
                (history, future, limit) => (future.Take(Oracle(history, future, limit, speculation)).ToList(), null));
        }
        return new SpeculationCeilingReport(stepCost, firstToken, plain / service, plain / exact, plain / oracle);
    }

    /// <summary>A step's draft, given what came before and what the model will choose; and what to do once it is verified.</summary>
    private delegate (IReadOnlyList<int> Draft, Action<int>? Verified) Drafter(IReadOnlyList<int> history, IReadOnlyList<int> future, int limit);

    // The cost of one sequence's steps: the prompt's pass (with its draft), then decode steps of 1 + draft positions,
    // each yielding the draft tokens the model chooses too and the token after them.
    private static double ReplayOne(IReadOnlyList<int> prompt, IReadOnlyList<int> output, IReadOnlyList<double> stepCost, double firstToken, Drafter drafter)
    {
        var total = 0.0;
        List<int> history = [.. prompt];
        for (var t = 0; t < output.Count;)
        {
            var future = output.Skip(t).ToList();
            var (draft, verified) = drafter(history, future, Math.Min(stepCost.Count - 2, future.Count - 1));
            var accepted = Right(draft, future);
            verified?.Invoke(accepted);
            total += t == 0 ? firstToken + stepCost[1 + draft.Count] - 1 : stepCost[1 + draft.Count];
            history.AddRange(future.Take(accepted + 1));
            t += accepted + 1;
        }
        return total;
    }

    // The service's drafter and planner (one row: a step's budget is all its own), learning as the batcher does.
    private static Drafter ServiceDraft(SpeculationOptions speculation, DraftAcceptance acceptance, IStepCost cost)
    {
        var drafter = new PromptLookup(speculation);
        return (history, future, limit) =>
        {
            var draft = drafter.Propose(history, Math.Min(limit, speculation.MaxStepTokens - 1));
            var copying = drafter.Copying;
            var keep = speculation.CostAware && draft.Count > 0 ? DraftPlanner.Width([draft.Count], [copying], acceptance, cost) - 1 : draft.Count;
            if (keep == 0 && draft.Count > 0) acceptance.Skipped(copying);
            var kept = draft.Take(keep).ToList();
            return (kept, accepted =>
            {
                drafter.Verified(kept.Count, accepted);
                acceptance.Verified(copying, kept.Count, accepted);
                acceptance.Stepped(1, accepted + 1, 1 + kept.Count);
            });
        };
    }

    // The service's occurrence, its draft as long as allowed and cut to the tokens that will be accepted.
    private static Drafter ExactDraft(SpeculationOptions speculation)
    {
        var drafter = new PromptLookup(speculation with { MinDraftTokens = speculation.MaxDraftTokens });
        return (history, future, limit) =>
        {
            var draft = drafter.Propose(history, limit);
            return (draft.Take(Right(draft, future)).ToList(), null);
        };
    }

    // Draft tokens that equal the tokens the model will choose, from the first.
    private static int Right(IReadOnlyList<int> draft, IReadOnlyList<int> future)
    {
        var n = 0;
        while (n < draft.Count && n < future.Count && draft[n] == future[n]) n++;
        return n;
    }

    // Over every earlier occurrence of the last n tokens (n from MaxNgram down): the longest right continuation.
    private static int Oracle(IReadOnlyList<int> history, IReadOnlyList<int> future, int limit, SpeculationOptions speculation)
    {
        var best = 0;
        for (var n = Math.Min(speculation.MaxNgram, history.Count - 1); n >= speculation.MinNgram; n--)
            for (var start = history.Count - n - 1; start >= 0; start--)
            {
                var match = true;
                for (var i = 0; i < n && match; i++) match = history[start + i] == history[history.Count - n + i];
                if (!match) continue;
                var right = 0;
                while (right < limit && start + n + right < history.Count && right < future.Count && history[start + n + right] == future[right]) right++;
                best = Math.Max(best, right);
            }
        return best;
    }

    /// <summary>
    /// A decode step's time by positions (1 to <paramref name="widest"/>) relative to one, and a prompt's pass in such
    /// steps: each round the prompt's pass, one step untimed (the first after it pays for the memory the pass let go),
    /// then a step of every width in a shuffled order, so that neither the machine's drift nor what ran before favours
    /// one; medians.
    /// </summary>
    private static (double[] StepCost, double FirstToken) StepCosts(CausalLM model, LoraAdapter? adapter, IReadOnlyList<int> prompt, int widest)
    {
        using var noGrad = no_grad();
        var layers = model.Config.LayerCount;
        var adapters = adapter is null ? null : new[] { adapter };
        var ids = tensor(prompt.Select(i => (long)i).ToArray()).reshape(1, -1);
        using var cache = new SlotKvCache(layers, 1, prompt.Count + widest, model.KvCacheDtype);
        var times = Enumerable.Range(0, widest + 1).Select(_ => new List<double>()).ToArray(); // [0]: the prompt's pass
        var order = Enumerable.Range(1, widest).ToArray();
        var random = new Random(17);
        var budget = Stopwatch.StartNew();
        for (var round = 0; round < MaxRounds && (round < MinRounds || budget.Elapsed < Budget); round++)
        {
            using (var scope = NewDisposeScope())
            {
                var clock = Stopwatch.StartNew();
                using var prefill = new KvCache(layers, prompt.Count, model.KvCacheDtype);
                model.call(new CausalLMInput(ids, ones_like(ids), Cache: prefill, LastTokens: 1, Adapters: adapters));
                times[0].Add(clock.Elapsed.TotalSeconds);
                if (round == 0) cache.Load(0, prefill, 0, 0, prompt.Count);
            }
            Step(1);
            random.Shuffle(order);
            foreach (var width in order)
                times[width].Add(Step(width));
        }
        var medians = times.Select(t => t.Order().ElementAt(t.Count / 2)).ToArray();
        return (medians.Select((m, w) => w == 0 ? 0 : m / medians[1]).ToArray(), medians[0] / medians[1]);

        // One step of `width` positions on the prompt's cache, rolled back after; its seconds.
        double Step(int width)
        {
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var step = tensor(Enumerable.Range(0, width).Select(t => (long)prompt[t % prompt.Count]).ToArray()).reshape(1, -1);
            cache.BeginStep([0], width);
            model.call(new CausalLMInput(step, cache.StepMask(ids.device), cache.StepPositions(ids.device), cache, LastTokens: width, Adapters: adapters));
            cache.Truncate(0, prompt.Count);
            return clock.Elapsed.TotalSeconds;
        }
    }

    /// <summary>A step cost from the measured table (positions past it extrapolated from its last step).</summary>
    private sealed class TableCost(IReadOnlyList<double> table) : IStepCost
    {
        public void Observe(int positions, double seconds)
        {
        }

        public double Cost(int positions) => positions < table.Count
            ? table[Math.Max(1, positions)]
            : table[^1] + (positions - table.Count + 1) * (table[^1] - table[^2]);
    }
}
