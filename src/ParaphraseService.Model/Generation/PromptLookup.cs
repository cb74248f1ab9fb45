namespace ParaphraseService.Model.Generation;

/// <summary>
/// One row's drafter for prompt-lookup decoding (Saxena 2023; transformers' <c>prompt_lookup_num_tokens</c>): the
/// row's last n tokens (n from <see cref="SpeculationOptions.MaxNgram"/> down to <see cref="SpeculationOptions.MinNgram"/>)
/// are looked up in what it has seen (its prompt, then what it generated), latest occurrence first, and the tokens that
/// followed that occurrence are proposed. A paraphrase copies long spans of its source, so these drafts are often
/// right. How many it proposes adapts to how many were accepted: two more after a fully accepted draft, one fewer
/// after a rejection (transformers' heuristic for assistant models), between <see cref="SpeculationOptions.FewestDraftTokens"/>
/// and <see cref="SpeculationOptions.MaxDraftTokens"/>.
/// </summary>
public sealed class PromptLookup(SpeculationOptions options)
{
    private int _length = options.FewestDraftTokens;

    /// <summary>Up to <paramref name="limit"/> tokens that may come next after <paramref name="history"/>; empty when nothing matches.</summary>
    public IReadOnlyList<int> Propose(IReadOnlyList<int> history, int limit)
    {
        var count = Math.Min(_length, limit);
        if (count <= 0) return [];
        for (var n = Math.Min(options.MaxNgram, history.Count - 1); n >= options.MinNgram; n--)
        {
            var tail = history.Count - n;
            // Latest occurrence first (the source text sits at the end of a prompt); the tail itself is not one.
            for (var start = tail - 1; start >= 0; start--)
            {
                if (!Matches(history, start, tail, n)) continue;
                var from = start + n;
                var take = Math.Min(count, history.Count - from);
                var draft = new int[take];
                for (var i = 0; i < take; i++) draft[i] = history[from + i];
                return draft;
            }
        }
        return [];
    }

    /// <summary>Whether the row's last draft was accepted whole (inside a copied span); false before any.</summary>
    public bool Copying { get; private set; }

    /// <summary>How the last draft fared (0 drafted: the row had none this step): its length and state adapt.</summary>
    public void Verified(int drafted, int accepted)
    {
        if (drafted == 0) return;
        Copying = accepted == drafted;
        _length = Copying ? Math.Min(_length + 2, options.MaxDraftTokens) : Math.Max(options.FewestDraftTokens, _length - 1);
    }

    private static bool Matches(IReadOnlyList<int> history, int start, int tail, int n)
    {
        for (var i = 0; i < n; i++)
            if (history[start + i] != history[tail + i]) return false;
        return true;
    }
}
