namespace ParaphraseService.Model.Checkpoints;

/// <summary>One entry of a zip central directory: where its local header is and how its bytes are stored.</summary>
internal sealed record ZipEntry(string Name, long LocalHeaderOffset, long CompressedSize, long Size, int Method, int Flags);
