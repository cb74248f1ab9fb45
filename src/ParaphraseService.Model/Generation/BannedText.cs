using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Terms one sequence must never generate, case-insensitively, however the tokenizer splits them: matched over the
/// UTF-8 bytes of the generated text (byte-level BPE can cut a term, even a character, anywhere), with ASCII letters
/// folded and the term's lower, upper and title-case spellings all banned. Before each token is chosen,
/// <see cref="Mask"/> removes every token that would complete a term given what was generated so far; each term is a
/// KMP automaton whose state is the longest generated suffix that begins the term, and for each state the tokens
/// that reach the end of the term are computed once per term and tokenizer (about 2 ms for a 50k vocabulary).
/// </summary>
public sealed class BannedText
{
    private readonly Pattern[] _patterns;
    private readonly int[] _states;

    private BannedText(Pattern[] patterns)
    {
        _patterns = patterns;
        _states = new int[patterns.Length];
    }

    /// <summary>The banned text of <paramref name="terms"/> for this tokenizer; null when there are none.</summary>
    public static BannedText? For(IReadOnlyList<string> terms, Gpt2Tokenizer tokenizer)
    {
        if (terms.Count == 0) return null;
        var spellings = terms.SelectMany(Spellings).Select(Fold).Where(b => b.Length > 0)
            .DistinctBy(Convert.ToBase64String).ToList();
        return spellings.Count == 0 ? null : new BannedText(spellings.Select(s => Pattern.For(s, tokenizer)).ToArray());
    }

    /// <summary>Sets the scores of the tokens that would complete a term to −∞.</summary>
    public void Mask(Span<float> scores)
    {
        for (var p = 0; p < _patterns.Length; p++)
        {
            // Ids ascend; those past the scores (a tokenizer larger than the model's vocabulary) are never picked anyway.
            foreach (var id in _patterns[p].BannedAt[_states[p]])
            {
                if (id >= scores.Length) break;
                scores[(int)id] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>Advances every term's automaton over the chosen token's bytes.</summary>
    public void Accept(int token, Gpt2Tokenizer tokenizer)
    {
        var bytes = token >= 0 && token < tokenizer.TokenBytes.Count ? tokenizer.TokenBytes[token] : [];
        for (var p = 0; p < _patterns.Length; p++)
            _states[p] = _patterns[p].Run(_states[p], bytes, out _);
    }

    private static IEnumerable<string> Spellings(string term) =>
        [term, term.ToLowerInvariant(), term.ToUpperInvariant(), System.Globalization.CultureInfo.InvariantCulture.TextInfo.ToTitleCase(term.ToLowerInvariant())];

    private static byte[] Fold(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var i = 0; i < bytes.Length; i++)
            if (bytes[i] is >= (byte)'A' and <= (byte)'Z') bytes[i] += 32;
        return bytes;
    }

    /// <summary>One spelling's automaton and, for each state, the tokens that would complete it.</summary>
    private sealed class Pattern
    {
        // Per tokenizer, bounded: requests choose the terms, so a stream of distinct ones must not grow memory for good.
        private const int MaxCached = 2048;
        private static readonly ConditionalWeakTable<Gpt2Tokenizer, ConcurrentDictionary<string, Pattern>> s_cache = new();

        private readonly byte[] _bytes;
        private readonly int[] _failure;

        private Pattern(byte[] bytes)
        {
            _bytes = bytes;
            // KMP: _failure[i] is the length of the longest proper prefix of bytes[..(i + 1)] that is also its suffix.
            _failure = new int[bytes.Length];
            for (int i = 1, k = 0; i < bytes.Length; i++)
            {
                while (k > 0 && bytes[i] != bytes[k]) k = _failure[k - 1];
                if (bytes[i] == bytes[k]) k++;
                _failure[i] = k;
            }
        }

        /// <summary>For each state (0 .. length − 1), the ids whose bytes would complete the term.</summary>
        public long[][] BannedAt { get; private set; } = [];

        public static Pattern For(byte[] folded, Gpt2Tokenizer tokenizer)
        {
            var cache = s_cache.GetValue(tokenizer, _ => new());
            if (cache.Count > MaxCached) cache.Clear();
            return cache.GetOrAdd(Convert.ToBase64String(folded), _ =>
            {
                var pattern = new Pattern(folded);
                var tokens = tokenizer.TokenBytes;
                pattern.BannedAt = Enumerable.Range(0, folded.Length).Select(state =>
                    Enumerable.Range(0, tokens.Count).Where(id =>
                    {
                        // From state s at least length − s more bytes are needed (a failure link only lowers the state).
                        if (tokens[id].Length < folded.Length - state) return false;
                        pattern.Run(state, tokens[id], out var completed);
                        return completed;
                    }).Select(id => (long)id).ToArray()).ToArray();
                return pattern;
            });
        }

        /// <summary>The state after <paramref name="input"/> (folded as the term is); whether the term was completed on the way.</summary>
        public int Run(int state, byte[] input, out bool completed)
        {
            completed = false;
            foreach (var raw in input)
            {
                var b = raw is >= (byte)'A' and <= (byte)'Z' ? (byte)(raw + 32) : raw;
                while (state > 0 && b != _bytes[state]) state = _failure[state - 1];
                if (b == _bytes[state]) state++;
                if (state == _bytes.Length)
                {
                    completed = true;
                    state = _failure[state - 1];
                }
            }
            return state;
        }
    }
}
