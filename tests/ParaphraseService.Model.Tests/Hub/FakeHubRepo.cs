namespace ParaphraseService.Model.Tests.Hub;

/// <summary>A fake repository: commits with their files, and branches or tags pointing at commits.</summary>
internal sealed class FakeHubRepo
{
    public Dictionary<string, string> Refs { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, IReadOnlyList<FakeHubFile>> Commits { get; } = new(StringComparer.Ordinal);

    public FakeHubRepo AddCommit(string commit, IReadOnlyList<FakeHubFile> files, params string[] refs)
    {
        Commits[commit] = files;
        foreach (var name in refs)
            Refs[name] = commit;
        return this;
    }

    public string? Resolve(string revision) =>
        Refs.TryGetValue(revision, out var commit) ? commit : Commits.ContainsKey(revision) ? revision : null;
}
