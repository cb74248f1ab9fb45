namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// What the Hub says about one file at one commit (from the HEAD of its resolve URL).
/// </summary>
/// <param name="Etag">Blob name in the cache: the git sha1 of a regular file, the sha256 of an LFS file.</param>
/// <param name="Size">The file's size (X-Linked-Size for LFS files, whose Content-Length is the pointer's).</param>
/// <param name="Location">Where to GET the bytes: the resolve URL, or the CDN URL it redirects to.</param>
internal sealed record HubFileMetadata(string Etag, long Size, Uri Location)
{
    /// <summary>The content's expected sha256 when the etag is one (LFS files), else null (size check only).</summary>
    public string? Sha256 => Etag.Length == 64 && Etag.All(char.IsAsciiHexDigitLower) ? Etag : null;
}
