namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// One repository's folder in the standard Hugging Face cache, laid out exactly as huggingface_hub does so either side
/// can reuse what the other downloaded:
/// <code>
/// {root}/models--Org--Name/blobs/{etag}                       file contents, named by git sha1 or LFS sha256
/// {root}/models--Org--Name/blobs/{etag}.incomplete            a download in progress (resumable)
/// {root}/models--Org--Name/snapshots/{commit}/{file}          relative symlink to ../../blobs/{etag}
/// {root}/models--Org--Name/refs/{revision}                    the commit a branch or tag last resolved to
/// {root}/.locks/models--Org--Name/{etag}.lock                 held while a blob is written (flock, as filelock does)
/// </code>
/// </summary>
internal sealed class HubCache(string root, HubModelId id)
{
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(250);

    public string RepoFolder { get; } = Path.Combine(root, id.CacheFolderName);

    private string LocksFolder { get; } = Path.Combine(root, ".locks", id.CacheFolderName);

    public string BlobPath(string etag) => Path.Combine(RepoFolder, "blobs", etag);

    public string IncompletePath(string etag) => BlobPath(etag) + ".incomplete";

    public string SnapshotFolder(string commit) => Path.Combine(RepoFolder, "snapshots", commit);

    public string PointerPath(string commit, string file) => Path.Combine(SnapshotFolder(commit), Local(file));

    /// <summary>The commit a revision pins in the cache: itself when it is a commit hash, else refs/{revision}.</summary>
    public string? CachedCommit(string revision)
    {
        if (HubModelId.IsCommitHash(revision))
            return revision;
        var refPath = RefPath(revision);
        if (!File.Exists(refPath))
            return null;
        var commit = File.ReadAllText(refPath).Trim();
        return HubModelId.IsCommitHash(commit) ? commit : null;
    }

    /// <summary>Records revision -> commit, atomically so a reader never sees half a hash. A commit needs no ref.</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit || CachedCommit(revision) == commit)
            return;
        var refPath = RefPath(revision);
        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        var temp = $"{refPath}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, commit);
        File.Move(temp, refPath, overwrite: true);
    }

    /// <summary>Every file of a cached snapshot whose content is really there (no dangling links), as repo paths.</summary>
    public IReadOnlyList<string> ListSnapshot(string commit)
    {
        var folder = SnapshotFolder(commit);
        if (!Directory.Exists(folder))
            return [];
        return Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(File.Exists)
            .Select(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'))
            .ToList();
    }

    /// <summary>
    /// Makes snapshots/{commit}/{file} point at blobs/{etag}. The link is built under a temporary name and renamed over
    /// the final one, so the file appears in the snapshot whole or not at all. Where symlinks are not allowed
    /// (Windows without developer mode) the blob is copied instead, as huggingface_hub does.
    /// </summary>
    public void Publish(string commit, string file, string etag)
    {
        var pointer = PointerPath(commit, file);
        var blob = BlobPath(etag);
        Directory.CreateDirectory(Path.GetDirectoryName(pointer)!);
        var temp = $"{pointer}.{Guid.NewGuid():N}.tmp";
        try
        {
            try
            {
                File.CreateSymbolicLink(temp, Path.GetRelativePath(Path.GetDirectoryName(pointer)!, blob));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                File.Delete(temp);
                File.Copy(blob, temp);
            }

            File.Move(temp, pointer, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>
    /// Checks that the cache alone can serve <paramref name="model"/>: a pinned commit, its snapshot, config.json,
    /// weights and every shard the weight index names.
    /// </summary>
    public bool TryFindComplete(HubModelId model, out string snapshot, out string missing)
    {
        snapshot = "";
        if (!Directory.Exists(RepoFolder))
        {
            missing = $"nothing of {model.RepoId} is cached ({RepoFolder} does not exist)";
            return false;
        }

        if (CachedCommit(model.Revision) is not { } commit)
        {
            missing = $"the cache does not know which commit '{model.Revision}' is (no {RefPath(model.Revision)})";
            return false;
        }

        var files = ListSnapshot(commit);
        try
        {
            var where = $"the cached snapshot {SnapshotFolder(commit)}";
            var selection = HubFileSelector.Select(files, where);
            var needed = selection.Files.ToList();
            if (selection.WeightIndex is { } index)
                needed.AddRange(HubFileSelector.ReadShards(PointerPath(commit, index), index, where));
            var absent = needed.Except(files, StringComparer.Ordinal).ToList();
            if (absent.Count > 0)
            {
                missing = $"the cached snapshot {SnapshotFolder(commit)} lacks {string.Join(", ", absent)}";
                return false;
            }
        }
        catch (HubException e)
        {
            missing = e.Message;
            return false;
        }

        snapshot = SnapshotFolder(commit);
        missing = "";
        return true;
    }

    /// <summary>
    /// Takes the blob's lock, waiting while another download (this process, another one, or Python's filelock, which
    /// also uses flock on this path) writes the same blob. Dispose the result to release.
    /// </summary>
    public async Task<IDisposable> LockBlobAsync(string etag, Action onWait, CancellationToken ct)
    {
        Directory.CreateDirectory(LocksFolder);
        var path = Path.Combine(LocksFolder, etag + ".lock");
        var waited = false;
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Unix.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (IsSharingViolation(e))
            {
                if (!waited)
                    onWait();
                waited = true;
                await Task.Delay(LockPollInterval, ct).ConfigureAwait(false);
            }
        }
    }

    private string RefPath(string revision) => Path.Combine(RepoFolder, "refs", Local(revision));

    private static string Local(string repoPath) => repoPath.Replace('/', Path.DirectorySeparatorChar);

    // Windows reports ERROR_SHARING_VIOLATION; Unix reports the errno of the failed flock (EWOULDBLOCK: 11 on Linux,
    // 35 on macOS).
    private static bool IsSharingViolation(IOException e) =>
        OperatingSystem.IsWindows() ? e.HResult == unchecked((int)0x80070020) : e.HResult is 11 or 35;
}
