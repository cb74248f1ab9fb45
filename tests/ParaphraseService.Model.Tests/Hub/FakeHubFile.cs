using System.Security.Cryptography;
using System.Text;

namespace ParaphraseService.Model.Tests.Hub;

/// <summary>A file of a fake repository. LFS files are named by their sha256 and served from the fake CDN.</summary>
internal sealed record FakeHubFile(string Name, byte[] Content, bool Lfs)
{
    public static FakeHubFile Text(string name, string content) => new(name, Encoding.UTF8.GetBytes(content), Lfs: false);

    /// <summary>Deterministic pseudo-random bytes, so failures reproduce.</summary>
    public static FakeHubFile LfsBlob(string name, int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return new FakeHubFile(name, bytes, Lfs: true);
    }

    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Content));

    /// <summary>What git names the blob: sha1 of "blob {size}\0" + content.</summary>
    public string GitSha1 => Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {Content.Length}\0"), .. Content]));

    /// <summary>The cache blob name the Hub's headers lead to.</summary>
    public string Etag => Lfs ? Sha256 : GitSha1;
}
