using System.IO.Compression;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Loading;

/// <summary>The GPT-2 tokenizer files embedded in the Model assembly, as synthetic checkpoints write them.</summary>
public sealed class Gpt2TokenizerFilesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("gpt2-tokenizer-files-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void WrittenFilesAreGpt2sFilesByteForByte()
    {
        var paths = Gpt2TokenizerFiles.WriteTo(_folder);

        Assert.Equal([Path.Combine(_folder, "vocab.json"), Path.Combine(_folder, "merges.txt")], paths);
        foreach (var name in new[] { "vocab.json", "merges.txt" })
        {
            using var fixture = new GZipStream(File.OpenRead(Fixtures.Get("gpt2-tokenizer", name + ".gz")), CompressionMode.Decompress);
            using var expected = new MemoryStream();
            fixture.CopyTo(expected);
            Assert.Equal(expected.ToArray(), File.ReadAllBytes(Path.Combine(_folder, name)));
        }
    }

    [Theory]
    [InlineData("vocab.json", "merges.txt")]
    [InlineData("merges.txt", "vocab.json")]
    public void HalfOfThePairIsRefusedNotReplacedByTheBuiltInVocabulary(string kept, string missing)
    {
        Gpt2TokenizerFiles.WriteTo(_folder);
        File.Delete(Path.Combine(_folder, missing));
        var error = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.FromFolder(_folder));
        Assert.Equal($"{_folder}: has {kept} but no {missing}: a GPT-2 tokenizer needs both (or tokenizer.json)", error.Message);
        // none of them: the built-in GPT-2 vocabulary, as before
        File.Delete(Path.Combine(_folder, kept));
        Assert.Equal("built-in GPT-2 vocabulary", Gpt2Tokenizer.FromFolder(_folder).Source);
    }

    [Theory]
    [InlineData("Hello world!")]
    [InlineData("The quick brown fox jumps over the lazy dog.")]
    [InlineData("  Paraphrase: it's 3.14 — isn't it?\nNew line, naïve café 東京<|endoftext|>next")]
    [InlineData("GPT-J has 6,053,381,344 parameters; we'd say about six billion.")]
    public void TheWrittenFilesTokenizeLikeTheBuiltInVocabulary(string text)
    {
        Gpt2TokenizerFiles.WriteTo(_folder);
        var fromFiles = Gpt2Tokenizer.FromFolder(_folder);

        Assert.Contains("vocab.json", fromFiles.Source);
        var ids = Gpt2Tokenizer.BuiltIn().Encode(text);
        Assert.Equal(ids, fromFiles.Encode(text));
        Assert.Equal(text, fromFiles.Decode(ids));
    }

    [Fact]
    public void OnlyTheTwoFilesAreEmbedded() =>
        Assert.Throws<ArgumentException>(() => Gpt2TokenizerFiles.Open("tokenizer.json").Dispose());
}
