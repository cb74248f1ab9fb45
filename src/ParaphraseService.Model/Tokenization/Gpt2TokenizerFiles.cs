using System.IO.Compression;

namespace ParaphraseService.Model.Tokenization;

/// <summary>
/// GPT-2's own <c>vocab.json</c> and <c>merges.txt</c> (the files GPT-J's hub repository ships), embedded gzipped in
/// this assembly so a model folder can be given a tokenizer without a download.
/// </summary>
public static class Gpt2TokenizerFiles
{
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";

    /// <summary>The file names <see cref="WriteTo"/> writes.</summary>
    public static IReadOnlyList<string> FileNames { get; } = [VocabFileName, MergesFileName];

    /// <summary>
    /// Writes <c>vocab.json</c> and <c>merges.txt</c> into <paramref name="folder"/> (created if missing), replacing
    /// files of those names, and returns their paths. The bytes are GPT-2's files exactly.
    /// </summary>
    public static IReadOnlyList<string> WriteTo(string folder)
    {
        Directory.CreateDirectory(folder);
        return FileNames.Select(name =>
        {
            var path = Path.Combine(folder, name);
            using var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
            using (var input = Open(name))
            {
                input.CopyTo(output);
            }
            output.Flush(flushToDisk: true);
            return path;
        }).ToList();
    }

    /// <summary>The decompressed contents of <c>vocab.json</c> or <c>merges.txt</c>; the caller disposes the stream.</summary>
    public static Stream Open(string fileName)
    {
        if (!FileNames.Contains(fileName, StringComparer.Ordinal))
            throw new ArgumentException($"No embedded tokenizer file '{fileName}': there are {string.Join(" and ", FileNames)}.", nameof(fileName));
        var resource = typeof(Gpt2TokenizerFiles).Assembly.GetManifestResourceStream(ResourceName(fileName))
            ?? throw new InvalidOperationException($"The embedded resource {ResourceName(fileName)} is missing from {typeof(Gpt2TokenizerFiles).Assembly.GetName().Name}.");
        return new GZipStream(resource, CompressionMode.Decompress);
    }

    private static string ResourceName(string fileName) => $"ParaphraseService.Model.Tokenization.gpt2.{fileName}.gz";
}
