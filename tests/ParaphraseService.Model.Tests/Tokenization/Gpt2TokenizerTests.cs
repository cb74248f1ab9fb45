using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Tokenization;

public sealed class Gpt2TokenizerTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("gpt2-tokenizer-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<string, int[]> ReferenceCases()
    {
        // Ids from OpenAI's GPT-2 encoder (see tests/fixtures/gpt2-tokenizer/make_reference_ids.js).
        var data = new TheoryData<string, int[]>();
        using var stream = File.OpenRead(Fixtures.Get("gpt2-tokenizer", "reference-ids.json"));
        foreach (var item in JsonNode.Parse(stream)!.AsArray())
            data.Add((string)item!["text"]!, item["ids"]!.AsArray().Select(id => (int)id!).ToArray());
        return data;
    }

    [Theory, MemberData(nameof(ReferenceCases))]
    public void BuiltInVocabularyGivesGpt2Ids(string text, int[] expected)
    {
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        Assert.Equal(expected, tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Theory, MemberData(nameof(ReferenceCases))]
    public void VocabAndMergesFromTheModelFolderGiveGpt2Ids(string text, int[] expected)
    {
        WriteVocabAndMerges();
        var tokenizer = Gpt2Tokenizer.FromFolder(_folder);
        Assert.Equal(expected, tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Theory, MemberData(nameof(ReferenceCases))]
    public void TokenizerJsonFromTheModelFolderGivesGpt2Ids(string text, int[] expected)
    {
        WriteTokenizerJson(mergesAsPairs: text.Length % 2 == 0);
        var tokenizer = Gpt2Tokenizer.FromFolder(_folder);
        Assert.Equal(expected, tokenizer.Encode(text));
    }

    [Theory, MemberData(nameof(ReferenceCases))]
    public void TokenBytesJoinToTheTextsUtf8InEveryBackend(string text, int[] ids)
    {
        WriteVocabAndMerges();
        foreach (var tokenizer in new[] { Gpt2Tokenizer.BuiltIn(), Gpt2Tokenizer.FromFolder(_folder) })
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(text), ids.SelectMany(id => tokenizer.TokenBytes[id]).ToArray());
    }

    [Fact]
    public void EndOfTextIsTheSpecialToken50256InEveryBackend()
    {
        WriteVocabAndMerges();
        foreach (var tokenizer in new[] { Gpt2Tokenizer.BuiltIn(), Gpt2Tokenizer.FromFolder(_folder) })
        {
            Assert.Equal([50256], tokenizer.Encode("<|endoftext|>"));
            Assert.Equal([15496, 50256, 995], tokenizer.Encode("Hello<|endoftext|> world"));
            Assert.Equal(50257, tokenizer.VocabularySize);
            Assert.Equal("Hello<|endoftext|> world", tokenizer.Decode([15496, 50256, 995]));
        }
    }

    [Fact]
    public void IdsBeyondTheVocabularyDecodeToNothing() =>
        Assert.Equal("Hello", Gpt2Tokenizer.BuiltIn().Decode([15496, 50300, 50399]));

    [Fact]
    public void FolderWithoutTokenizerFilesFallsBackToTheBuiltInVocabulary() =>
        Assert.Equal("built-in GPT-2 vocabulary", Gpt2Tokenizer.FromFolder(_folder).Source);

    [Fact]
    public void CorruptTokenizerJsonIsAClearError()
    {
        File.WriteAllText(Path.Combine(_folder, "tokenizer.json"), "{\"model\": {\"type\": \"Unigram\"}}");
        var error = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.FromFolder(_folder));
        Assert.Contains("Unigram", error.Message);
        Assert.Contains(_folder, error.Message);
    }

    [Theory]
    // A null id or merge was a bare NullReferenceException; id 2147483647 made the vocabulary size negative.
    [InlineData("{\"a\": 0, \"b\": null}", "[\"a b\"]", "tokenizer.json: model.vocab 'b' is null, not a token id")]
    [InlineData("{\"a\": 0, \"b\": \"one\"}", "[\"a b\"]", "tokenizer.json: model.vocab 'b' is \"one\", not a token id")]
    [InlineData("{\"a\": 0, \"b\": 1}", "[\"a b\", null]", "tokenizer.json: model.merges[1] is null, not a merge")]
    [InlineData("{\"a\": 0, \"b\": 1}", "[[\"a\"]]", "tokenizer.json: model.merges[0] is [\"a\"], not a merge")]
    [InlineData("{\"a\": 0, \"b\": 1}", "[[\"a\", null]]", "tokenizer.json: model.merges[0] is [\"a\",null], not a merge")]
    [InlineData("{\"a\": 0, \"b\": 2147483647}", "[\"a b\"]", "tokenizer.json: token 'b' has id 2147483647, outside 0 to 1048575")]
    [InlineData("{}", "[]", "tokenizer.json has no tokens")]
    public void BrokenTokenizerJsonNamesTheFileAndTheEntry(string vocab, string merges, string expected)
    {
        File.WriteAllText(Path.Combine(_folder, "tokenizer.json"), $"{{\"model\": {{\"type\": \"BPE\", \"vocab\": {vocab}, \"merges\": {merges}}}}}");

        var error = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.FromFolder(_folder));

        Assert.StartsWith(_folder, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"a\": 0, \"b\": 2147483647}", "vocab.json: token 'b' has id 2147483647, outside 0 to 1048575")]
    [InlineData("{\"a\": -1, \"b\": 1}", "vocab.json: token 'a' has id -1, outside 0 to 1048575")]
    [InlineData("{\"a\": 0, \"b\": null}", "vocab.json is not a map of tokens to ids")]
    public void BrokenVocabJsonNamesTheFileAndTheToken(string vocab, string expected)
    {
        File.WriteAllText(Path.Combine(_folder, "vocab.json"), vocab);
        File.WriteAllText(Path.Combine(_folder, "merges.txt"), "#version: 0.2\na b\n");

        var error = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.FromFolder(_folder));

        Assert.StartsWith(_folder, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [LinuxTheory]
    [InlineData("vocab.json")]
    [InlineData("merges.txt")]
    public async Task ANamedPipeForVocabOrMergesIsRefusedWithItsPath(string file)
    {
        WriteVocabAndMerges();
        var pipe = Path.Combine(_folder, file);
        NamedPipes.Create(pipe);

        var error = await NamedPipes.RefusedAsync<InvalidDataException>(() => Gpt2Tokenizer.FromFolder(_folder));

        Assert.Contains($"{pipe}: not a regular file but a named pipe (FIFO)", error.Message, StringComparison.Ordinal);
    }

    private void WriteVocabAndMerges()
    {
        Gunzip("vocab.json.gz", Path.Combine(_folder, "vocab.json"));
        Gunzip("merges.txt.gz", Path.Combine(_folder, "merges.txt"));
    }

    private void WriteTokenizerJson(bool mergesAsPairs)
    {
        var vocabPath = Path.Combine(_folder, "vocab.tmp");
        var mergesPath = Path.Combine(_folder, "merges.tmp");
        Gunzip("vocab.json.gz", vocabPath);
        Gunzip("merges.txt.gz", mergesPath);
        var merges = File.ReadLines(mergesPath).Where(l => l.Length > 0 && !l.StartsWith("#version"))
            .Select(l => mergesAsPairs ? (JsonNode)new JsonArray(l.Split(' ')[0], l.Split(' ')[1]) : l);
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 50256, ["content"] = "<|endoftext|>", ["special"] = true }),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["vocab"] = JsonNode.Parse(File.ReadAllText(vocabPath)),
                ["merges"] = new JsonArray(merges.ToArray()),
            },
        };
        File.WriteAllText(Path.Combine(_folder, "tokenizer.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        File.Delete(vocabPath);
        File.Delete(mergesPath);
    }

    private static void Gunzip(string fixture, string destination)
    {
        using var input = new GZipStream(File.OpenRead(Fixtures.Get("gpt2-tokenizer", fixture)), CompressionMode.Decompress);
        using var output = File.Create(destination);
        input.CopyTo(output);
    }
}
