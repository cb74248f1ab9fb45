namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// Progress of one file being downloaded. <see cref="BytesDownloaded"/> counts bytes already on disk, so a resumed
/// download starts above zero.
/// </summary>
/// <param name="FileName">The file's path in the repository, e.g. <c>model-00001-of-00002.safetensors</c>.</param>
/// <param name="BytesDownloaded">Bytes of this file on disk so far.</param>
/// <param name="TotalBytes">The file's full size as announced by the Hub.</param>
public readonly record struct HubDownloadProgress(string FileName, long BytesDownloaded, long TotalBytes);
