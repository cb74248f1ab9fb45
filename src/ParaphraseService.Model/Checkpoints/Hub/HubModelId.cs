using System.Text.RegularExpressions;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// A Hugging Face model repository and revision, written <c>Org/Name</c> or <c>Org/Name@revision</c>
/// (e.g. <c>EleutherAI/gpt-j-6b@float16</c>). The revision is a branch, a tag or a 40-hex commit; it defaults to
/// <c>main</c>. Both parts end up in cache paths, so anything that could escape the cache folder is rejected.
/// </summary>
public sealed partial record HubModelId
{
    public const string DefaultRevision = "main";

    private HubModelId(string repoId, string revision)
    {
        RepoId = repoId;
        Revision = revision;
    }

    /// <summary>The repository, <c>Org/Name</c> (or a bare <c>Name</c> for the few legacy un-namespaced models).</summary>
    public string RepoId { get; }

    /// <summary>The branch, tag or commit asked for.</summary>
    public string Revision { get; }

    /// <summary>True when <see cref="Revision"/> is a full commit hash, which needs no lookup to pin a snapshot.</summary>
    public bool RevisionIsCommit => IsCommitHash(Revision);

    /// <summary>The repository's folder in the Hugging Face cache, <c>models--Org--Name</c>.</summary>
    public string CacheFolderName => "models--" + RepoId.Replace("/", "--", StringComparison.Ordinal);

    /// <exception cref="HubException">Kind <see cref="HubErrorKind.InvalidModelId"/>, saying what is wrong.</exception>
    public static HubModelId Parse(string value) =>
        TryParse(value, out var id, out var error) ? id : throw new HubException(HubErrorKind.InvalidModelId, error);

    public static bool TryParse(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out HubModelId? id,
        out string error)
    {
        id = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "The model id is empty; expected 'Org/Name' or 'Org/Name@revision', e.g. 'EleutherAI/gpt-j-6b'.";
            return false;
        }

        var at = value.IndexOf('@', StringComparison.Ordinal);
        var repo = at < 0 ? value : value[..at];
        var revision = at < 0 ? DefaultRevision : value[(at + 1)..];

        if (RepoIdError(repo) is { } repoError)
        {
            error = $"Invalid model id '{value}': {repoError} Expected 'Org/Name' or 'Org/Name@revision', e.g. 'EleutherAI/gpt-j-6b@float16'.";
            return false;
        }

        if (RevisionError(revision) is { } revisionError)
        {
            error = $"Invalid revision in model id '{value}': {revisionError}";
            return false;
        }

        id = new HubModelId(repo, revision);
        error = "";
        return true;
    }

    public static bool IsCommitHash(string revision) => CommitHash().IsMatch(revision);

    public override string ToString() => Revision == DefaultRevision ? RepoId : $"{RepoId}@{Revision}";

    // The Hub's own rules (huggingface_hub validate_repo_id): at most one '/', each part made of letters, digits,
    // '_', '-', '.', starting and ending with a letter, digit or '_'; '--' and '..' are reserved; at most 96 chars.
    private static string? RepoIdError(string repo)
    {
        if (repo.Length == 0)
            return "the repository name is empty.";
        if (repo.Length > 96)
            return "the repository name is longer than 96 characters.";
        var parts = repo.Split('/');
        if (parts.Length > 2)
            return "a repository id has at most one '/' (Org/Name).";
        if (parts.Any(p => !RepoIdPart().IsMatch(p)))
            return "each part may use only letters, digits, '_', '-' and '.', and must start and end with a letter, digit or '_'.";
        if (repo.Contains("--", StringComparison.Ordinal) || repo.Contains("..", StringComparison.Ordinal))
            return "'--' and '..' are not allowed in a repository id.";
        if (repo.EndsWith(".git", StringComparison.OrdinalIgnoreCase))
            return "a repository id cannot end with '.git'.";
        return null;
    }

    // Branch and tag names may contain '/' (e.g. refs/pr/1) and land as nested files under refs/, so every segment
    // must be a plain name.
    private static string? RevisionError(string revision)
    {
        if (revision.Length == 0)
            return "nothing follows '@'; give a branch, tag or commit (or drop the '@' for 'main').";
        if (revision.Length > 255)
            return "it is longer than 255 characters.";
        foreach (var segment in revision.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or ".." || !RevisionSegment().IsMatch(segment))
                return $"'{revision}' is not a plain branch, tag or commit name (letters, digits, '.', '_', '-', '+', "
                       + "segments separated by single '/', no '.' or '..' segments).";
        }
        if (revision.Contains("..", StringComparison.Ordinal))
            return "'..' is not allowed in a revision.";
        return null;
    }

    [GeneratedRegex("^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")]
    private static partial Regex RepoIdPart();

    [GeneratedRegex("^[A-Za-z0-9._+-]+$")]
    private static partial Regex RevisionSegment();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
