namespace ParaphraseService.Api.Storage;

/// <summary>Whether the storage can be used yet, for <c>/health/ready</c>.</summary>
public interface IStorageHealth
{
    /// <summary>Why the node is not ready because of its storage; null when it is.</summary>
    string? Problem { get; }
}

/// <summary>Embedded storage is ready once the app starts (its folders and SQLite file are opened then).</summary>
internal sealed class EmbeddedStorageHealth : IStorageHealth
{
    public string? Problem => null;
}
