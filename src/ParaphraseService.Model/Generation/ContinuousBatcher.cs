using System.Diagnostics;
using System.Runtime.ExceptionServices;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Kernels;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// What one step did for one sequence: the token it produced, and its result once it finished; or, when
/// <see cref="Error"/> is set, why the sequence failed (it is finished and its slot is free).
/// </summary>
public sealed record SlotUpdate(int Slot, int Token, bool Finished, GenerationResult? Result, Exception? Error = null);

/// <summary>
/// Iteration-level (continuous) batching over a fixed set of slots: sequences are admitted into free slots between
/// steps, each <see cref="Step"/> prefills the newly admitted ones together and then runs one decode step for every
/// sequence already running, and a sequence that finishes frees its slot at once. Each slot has its own sampler and
/// LoRA adapter, so a sequence produces what it would alone. Tensors only: the caller (a scheduler) owns the thread.
/// A failure stays with the sequences it concerns: a row whose token cannot be chosen fails alone, a batched forward
/// pass that throws fails the rows of that pass (their slots are freed, so nothing half-written is read again), and
/// the batcher goes on with the others; <see cref="Step"/> itself does not throw.
/// With <see cref="SpeculationOptions"/> on, a decode step also verifies each row's draft (<see cref="PromptLookup"/>)
/// and may produce several tokens for a row. Each token is still chosen by the row's own sampler from the logits of
/// exactly the tokens before it, in order, and a draft token is kept only when it is the token chosen: what a row
/// generates is the same with speculation on or off, greedy or sampled (the sampler draws one number per token).
/// </summary>
public sealed class ContinuousBatcher : IDisposable
{
    private readonly CausalLM _model;
    private readonly Gpt2Tokenizer _tokenizer;
    private readonly SlotKvCache _cache;
    private readonly Slot?[] _slots;
    private readonly Device _device;
    private readonly int _allowedVocabulary;
    private readonly SpeculationOptions _speculation;
    private readonly IStepCost _stepCost;
    private readonly DraftAcceptance _acceptance;

    /// <param name="stepCost">
    /// What a decode step costs by its positions, which with <paramref name="acceptance"/> decides how long drafts are
    /// (<see cref="DraftPlanner"/>); by default learned from this batcher's own steps. Share one between batchers of one
    /// model to keep what was learned.
    /// </param>
    /// <param name="acceptance">What drafts have yielded; by default learned from this batcher's own steps. Shared as <paramref name="stepCost"/>.</param>
    public ContinuousBatcher(CausalLM model, Gpt2Tokenizer tokenizer, int slots, int capacity, SpeculationOptions? speculation = null,
        IStepCost? stepCost = null, DraftAcceptance? acceptance = null)
    {
        _speculation = speculation ?? SpeculationOptions.Off;
        _speculation.Validate();
        _stepCost = stepCost ?? new MeasuredStepCost();
        _acceptance = acceptance ?? new DraftAcceptance();
        _model = model;
        _tokenizer = tokenizer;
        _cache = new SlotKvCache(model.Config.LayerCount, slots, Math.Min(capacity, model.Config.MaxPositions), model.KvCacheDtype);
        _slots = new Slot?[slots];
        _device = model.parameters().First().device;
        _allowedVocabulary = Math.Min(model.Config.VocabSize, tokenizer.VocabularySize);
    }

    /// <summary>Decode work so far: steps, tokens, and draft tokens proposed and accepted.</summary>
    public SpeculationStats Stats { get; private set; } = new(0, 0, 0, 0, 0);

    public int FreeSlots => _slots.Count(s => s is null);
    public int ActiveCount => _slots.Count(s => s is not null);

    /// <summary>Puts a sequence in a free slot; its prompt is processed at the next <see cref="Step"/>.</summary>
    /// <returns>The slot, which identifies the sequence in <see cref="SlotUpdate"/>s until it finishes.</returns>
    public int Admit(IReadOnlyList<int> prompt, GenerationOptions options, LoraAdapter? adapter = null) =>
        AdmitGroup(prompt, [options], adapter)[0];

    /// <summary>
    /// Several continuations of one prompt (candidates), one slot each: the prompt is prefilled once and its keys and
    /// values copied into every slot; each continues with its own options (typically its own seed).
    /// </summary>
    public IReadOnlyList<int> AdmitGroup(IReadOnlyList<int> prompt, IReadOnlyList<GenerationOptions> options, LoraAdapter? adapter = null)
    {
        if (options.Count == 0)
            throw new ArgumentException("A group needs at least one sequence.");
        foreach (var o in options)
        {
            o.Validate();
            SequenceState.Validate(prompt, o.MaxNewTokens, _model.Config, _cache.Capacity);
        }
        if (adapter is not null && _model.Lora is null)
            throw new InvalidOperationException("This model was built without LoRA support.");
        if (FreeSlots < options.Count)
            throw new InvalidOperationException($"{options.Count} slots needed, {FreeSlots} free: wait for sequences to finish.");
        var group = new object();
        var slots = new List<int>();
        foreach (var o in options)
        {
            var slot = Array.IndexOf(_slots, null);
            var drafter = _speculation.Enabled && o.Speculate ? new PromptLookup(_speculation) : null;
            _slots[slot] = new Slot(new SequenceState(prompt, o, _model.Config, _allowedVocabulary, _tokenizer), adapter, group, drafter);
            slots.Add(slot);
        }
        return slots;
    }

    /// <summary>Drops a sequence (a client went away) and frees its slot.</summary>
    public void Cancel(int slot) => Retire(slot);

    /// <summary>Why a batched forward pass of the last <see cref="Step"/> failed (its rows failed with it); null when none did.</summary>
    public Exception? LastStepError { get; private set; }

    /// <summary>One iteration: a decode step for what was already running, then the prefill of what was admitted.</summary>
    public IReadOnlyList<SlotUpdate> Step()
    {
        var updates = new List<SlotUpdate>();
        LastStepError = null;
        var running = Enumerable.Range(0, _slots.Length).Where(s => _slots[s] is { Prefilled: true }).ToList();
        var admitted = Enumerable.Range(0, _slots.Length).Where(s => _slots[s] is { Prefilled: false })
            .GroupBy(s => _slots[s]!.Group).Select(g => g.ToList()).ToList();
        using var noGrad = no_grad();
        if (running.Count > 0)
            Isolated(running, () => Decode(running, updates), updates);
        if (admitted.Count > 0)
            Isolated(admitted.SelectMany(g => g).ToList(), () => Prefill(admitted, updates), updates);
        return updates;
    }

    /// <summary>Runs one batched pass; if it throws, every slot of it that has not reported yet fails and is freed.</summary>
    private void Isolated(List<int> slots, Action pass, List<SlotUpdate> updates)
    {
        try
        {
            pass();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LastStepError = e;
            var reported = updates.Select(u => u.Slot).ToHashSet();
            foreach (var slot in slots.Where(s => _slots[s] is not null && !reported.Contains(s)))
            {
                updates.Add(new SlotUpdate(slot, -1, true, null, e));
                Retire(slot);
            }
        }
    }

    /// <summary>
    /// One forward for every newly admitted group (one row per group), then each member's slot gets a copy. With
    /// speculation, a row's prompt is followed by its draft (<see cref="Drafts"/>), verified in the same pass: the
    /// tokens that follow a paraphrase prompt usually copy the start of its source, and they come with the prompt instead
    /// of taking a decode step.
    /// </summary>
    private void Prefill(List<List<int>> groups, List<SlotUpdate> updates)
    {
        using var scope = NewDisposeScope();
        var admitted = groups.Select(g => g[0]).ToList();
        var drafts = Drafts(admitted, slot => _slots[slot]!.State.Prompt.Count);
        var width = 1 + drafts.Max(d => d.Count);
        var eos = _model.Config.EosTokenId;
        // Row r: its prompt, then its draft; a shorter draft is padded with tokens whose logits nobody reads.
        var sequences = admitted.Select((slot, r) => (IReadOnlyList<int>)
            [.. _slots[slot]!.State.Prompt, .. drafts[r], .. Enumerable.Repeat(eos, width - 1 - drafts[r].Count)]).ToList();
        var (ids, mask) = LeftPadded.Batch(sequences, eos, _device);
        var length = (int)ids.size(1);
        using var cache = new KvCache(_model.Config.LayerCount, length, _model.KvCacheDtype);
        var adapters = admitted.Select(s => _slots[s]!.Adapter).ToList();
        var logits = _model.call(new CausalLMInput(ids, mask, Cache: cache,
            LastTokens: width, Adapters: adapters.Any(a => a is not null) ? adapters : null)); // (B, width, V)
        var members = groups.SelectMany((g, r) => g.Select(member => (Slot: member, Logits: logits[r, 0]))).ToList();
        var choices = ChooseAll(members);
        var (m, drafted, accepted) = (0, 0, 0);
        for (var r = 0; r < groups.Count; r++)
        {
            foreach (var member in groups[r])
            {
                var slot = _slots[member]!;
                // A member that does not speculate reads the logits after the prompt only.
                var draft = slot.Drafter is null ? [] : drafts[r];
                var (_, kept, alive) = Verify(member, draft, choices[m++], logits[r], updates);
                if (alive)
                {
                    // The prompt and the accepted draft tokens; the chosen token after them is the next input.
                    _cache.Load(member, cache, r, length - sequences[r].Count, slot.State.Prompt.Count + kept);
                    slot.Prefilled = true;
                }
                _acceptance.Verified(copying: false, alive ? draft.Count : kept, kept);
                (drafted, accepted) = (drafted + draft.Count, accepted + kept);
            }
        }
        Stats = Stats with { Drafted = Stats.Drafted + drafted, Accepted = Stats.Accepted + accepted };
    }

    private void Decode(List<int> running, List<SlotUpdate> updates)
    {
        using var scope = NewDisposeScope();
        var started = Stopwatch.GetTimestamp();
        var drafts = Drafts(running, slot => _cache.Lengths[slot]);
        var width = 1 + drafts.Max(d => d.Count);
        // Row r: its next input, then its draft; a shorter draft is padded with tokens whose logits nobody reads.
        var ids = new long[running.Count, width];
        var adapters = new LoraAdapter?[running.Count];
        for (var r = 0; r < running.Count; r++)
        {
            var slot = _slots[running[r]]!;
            ids[r, 0] = slot.NextInput;
            for (var t = 1; t < width; t++)
                ids[r, t] = t - 1 < drafts[r].Count ? drafts[r][t - 1] : _model.Config.EosTokenId;
            adapters[r] = slot.Adapter;
        }
        _cache.BeginStep(running, width);
        var logits = _model.call(new CausalLMInput(
            tensor(ids, device: _device), _cache.StepMask(_device), _cache.StepPositions(_device), _cache, LastTokens: width,
            Adapters: adapters.Any(a => a is not null) ? adapters : null)); // (B, T, V)
        var (tokens, drafted, accepted) = (0, 0, 0);
        var first = ChooseAll(running.Select((slot, r) => (slot, logits[r, 0])).ToList());
        for (var r = 0; r < running.Count; r++)
        {
            var copying = _slots[running[r]]!.Drafter?.Copying ?? false;
            // What the row held before this step: its cache keeps that, the input and the accepted draft tokens.
            var held = _cache.Lengths[running[r]] - width;
            var (emitted, kept, alive) = Verify(running[r], drafts[r], first[r], logits[r], updates);
            if (alive)
                _cache.Truncate(running[r], held + 1 + kept);
            // A row that finished inside its draft (a stop sequence, its last token) did not reach the tokens after.
            _acceptance.Verified(copying, alive ? drafts[r].Count : kept, kept);
            (tokens, drafted, accepted) = (tokens + emitted, drafted + drafts[r].Count, accepted + kept);
        }
        _stepCost.Observe(running.Count * width, Stopwatch.GetElapsedTime(started).TotalSeconds);
        _acceptance.Stepped(running.Count, tokens, running.Count * width);
        Stats = Stats with
        {
            Steps = Stats.Steps + 1, RowSteps = Stats.RowSteps + running.Count, Tokens = Stats.Tokens + tokens, Drafted = Stats.Drafted + drafted,
            Accepted = Stats.Accepted + accepted,
        };
    }

    /// <summary>
    /// Each row's draft within the step's budget: every row of a step computes as many positions as the longest draft
    /// needs, so n rows can afford drafts of MaxStepTokens / n − 1 tokens each. With <see cref="SpeculationOptions.CostAware"/>,
    /// drafts are then cut to the length that pays most for the step's measured cost (<see cref="DraftPlanner"/>; none
    /// when no draft pays for itself). A prompt's pass costs as much more per extra position as a decode step, so the same
    /// rule decides its drafts.
    /// </summary>
    /// <param name="held">The positions a row's slot holds before the pass (a new row: its prompt's).</param>
    private List<IReadOnlyList<int>> Drafts(List<int> running, Func<int, int> held)
    {
        var share = _speculation.Enabled ? _speculation.MaxStepTokens / running.Count - 1 : 0;
        var room = running.Min(s => _cache.Capacity - held(s)) - 1;
        var drafts = new List<IReadOnlyList<int>>(running.Count);
        foreach (var s in running)
        {
            var slot = _slots[s]!;
            IReadOnlyList<int> draft = [];
            if (share > 0 && slot.Drafter is { } drafter)
            {
                // The token after a fully accepted draft comes from the step itself: the draft stops one short of the limit.
                var left = slot.State.Options.MaxNewTokens - slot.State.GeneratedCount - 1;
                draft = drafter.Propose(slot.State.History, Math.Min(share, Math.Min(left, room)));
            }
            drafts.Add(draft);
        }
        if (!_speculation.CostAware || drafts.All(d => d.Count == 0))
            return drafts;
        var copying = running.Select(s => _slots[s]!.Drafter?.Copying ?? false).ToList();
        var keep = DraftPlanner.Width(drafts.Select(d => d.Count).ToList(), copying, _acceptance, _stepCost) - 1;
        if (keep == 0)
            for (var r = 0; r < running.Count; r++)
                if (drafts[r].Count > 0) _acceptance.Skipped(copying[r]);
        return drafts.Select(d => d.Count <= keep ? d : d.Take(keep).ToList()).ToList();
    }

    /// <summary>
    /// Chooses a row's tokens from its logits in order: position 0 gives the token after its input; while the chosen
    /// token equals the draft's next one, the logits after that draft token are valid too and give the next. The caller
    /// keeps, in the row's cache, its input and the accepted draft tokens only.
    /// </summary>
    /// <returns>Tokens emitted, draft tokens accepted, and whether the row goes on (false: it finished or failed, and its slot is free).</returns>
    private (int Emitted, int Accepted, bool Alive) Verify(int index, IReadOnlyList<int> draft, Choice first, Tensor logits, List<SlotUpdate> updates)
    {
        var slot = _slots[index]!;
        for (var t = 0; ; t++)
        {
            if (Emit(index, slot, t == 0 ? first : Choose(slot, logits[t]), updates) is not { } token)
                return (t + (updates[^1].Error is null ? 1 : 0), t, false);
            if (t < draft.Count && token == draft[t])
                continue;
            // Rejected (or the draft ran out): the t accepted draft tokens stay; the chosen token comes next.
            slot.NextInput = token;
            slot.Drafter?.Verified(draft.Count, t);
            return (t + 1, t, true);
        }
    }

    /// <summary>A row's chosen token, or why it could not be chosen.</summary>
    private readonly record struct Choice(int Token, Exception? Error);

    private static Choice Choose(Slot slot, Tensor logits)
    {
        try
        {
            return new Choice(slot.State.Choose(logits), null);
        }
        catch (Exception e)
        {
            return new Choice(-1, e);
        }
    }

    /// <summary>
    /// Each row's token from its logits, rows spread over the kernel threads: a sampled choice over 50k logits takes about
    /// a millisecond, and a step's rows one after another were a third of a 16-row step. Each row has its own sampler
    /// and random stream, so which thread chooses changes nothing.
    /// </summary>
    private Choice[] ChooseAll(List<(int Slot, Tensor Logits)> rows)
    {
        var choices = new Choice[rows.Count];
        KernelThreads.Run(rows.Count, get_num_threads(), r => choices[r] = Choose(_slots[rows[r].Slot]!, rows[r].Logits));
        return choices;
    }

    /// <summary>Reports a row's chosen token; null when the row finished or failed (its slot is then free).</summary>
    private int? Emit(int index, Slot slot, Choice choice, List<SlotUpdate> updates)
    {
        var (token, error) = choice;
        if (error is null)
        {
            try
            {
                slot.State.Accept(token, _tokenizer);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                error = e;
            }
        }
        if (error is not null)
        {
            if (error is OutOfMemoryException) ExceptionDispatchInfo.Throw(error);
            // This row's own failure (its logits, its sampling): the others of the batch go on.
            updates.Add(new SlotUpdate(index, -1, true, null, error));
            Retire(index);
            return null;
        }
        if (!slot.State.Finished)
        {
            updates.Add(new SlotUpdate(index, token, false, null));
            return token;
        }
        updates.Add(new SlotUpdate(index, token, true, slot.State.Result(_tokenizer)));
        Retire(index);
        return null;
    }

    private void Retire(int slot)
    {
        _slots[slot] = null;
        _cache.Clear(slot);
    }

    public void Dispose()
    {
        for (var s = 0; s < _slots.Length; s++) Retire(s);
        _cache.Dispose();
    }

    private sealed class Slot(SequenceState state, LoraAdapter? adapter, object group, PromptLookup? drafter)
    {
        /// <summary>Proposes draft tokens when this row decodes speculatively; null when it does not.</summary>
        public PromptLookup? Drafter { get; } = drafter;
        /// <summary>Slots admitted together with one prompt share one prefill.</summary>
        public object Group { get; } = group;
        public SequenceState State { get; } = state;
        public LoraAdapter? Adapter { get; } = adapter;
        public bool Prefilled { get; set; }
        public int NextInput { get; set; }
    }
}

/// <summary>
/// Decode steps run (forward passes), the rows they decoded summed over steps, the tokens they produced, and draft
/// tokens proposed and accepted (in decode steps and in prompts' passes, which are not counted as steps).
/// </summary>
public sealed record SpeculationStats(long Steps, long RowSteps, long Tokens, long Drafted, long Accepted)
{
    public double AcceptanceRate => Drafted == 0 ? 0 : (double)Accepted / Drafted;

    /// <summary>Tokens one sequence gains per step (1 without speculation).</summary>
    public double TokensPerStep => RowSteps == 0 ? 0 : (double)Tokens / RowSteps;

    public SpeculationStats Plus(SpeculationStats other) =>
        new(Steps + other.Steps, RowSteps + other.RowSteps, Tokens + other.Tokens, Drafted + other.Drafted, Accepted + other.Accepted);

    public SpeculationStats Minus(SpeculationStats other) =>
        new(Steps - other.Steps, RowSteps - other.RowSteps, Tokens - other.Tokens, Drafted - other.Drafted, Accepted - other.Accepted);
}
