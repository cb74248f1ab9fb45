using System.Diagnostics;
using System.Text;
using ParaphraseService.Training.Datasets;

namespace ParaphraseService.Training.Tests;

/// <summary>Small in-memory inputs, byte for byte (BOM and line ends are what many tests are about).</summary>
internal static class TestData
{
    public static byte[] Bytes(string text, bool bom = false) =>
        bom ? [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(text)] : Encoding.UTF8.GetBytes(text);

    public static DatasetReadResult Read(string text, string name, DatasetReadOptions? options = null, bool bom = false) =>
        Read(Bytes(text, bom), name, options);

    public static DatasetReadResult Read(byte[] bytes, string name, DatasetReadOptions? options = null)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        return ParaphraseDatasetReader.Read(stream, name, options);
    }

    /// <summary>The problems a read fails with.</summary>
    public static DatasetException Fails(string text, string name, DatasetReadOptions? options = null) =>
        Assert.Throws<DatasetException>(() => Read(text, name, options));

    public static DatasetException Fails(byte[] bytes, string name, DatasetReadOptions? options = null) =>
        Assert.Throws<DatasetException>(() => Read(bytes, name, options));

    /// <summary>The PAWS header, and rows joined with CRLF as the original distribution has them.</summary>
    public static string Paws(params string[] rows) =>
        string.Concat(new[] { "id\tsentence1\tsentence2\tlabel" }.Concat(rows).Select(r => r + "\r\n"));
}

/// <summary>
/// Data shared by the whole workplace and kept out of the repository: a sibling <c>shared/data</c> folder of the
/// repository root or of a folder above it (CI has a copy at <c>../shared/data</c>). Missing, the tests that need it
/// fail and say where they looked: they are not skipped, so a missing copy cannot pass unnoticed.
/// </summary>
internal static class SharedData
{
    public static string Get(params string[] parts)
    {
        var repositoryRoot = Directory.GetParent(Fixtures.Get())!.Parent!;
        var looked = new List<string>();
        for (var dir = repositoryRoot; dir is not null; dir = dir.Parent)
        {
            var data = Path.Combine(dir.FullName, "shared", "data");
            looked.Add(data);
            var path = Path.Combine([data, .. parts]);
            if (File.Exists(path))
                return path;
        }
        Assert.Fail($"Shared data file {Path.Combine(parts)} not found; looked in: {string.Join(", ", looked)}. " +
            "Put a copy of the workplace's shared/data folder beside the repository (../shared/data).");
        throw new UnreachableException();
    }
}
