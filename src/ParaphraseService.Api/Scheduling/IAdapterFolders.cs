namespace ParaphraseService.Api.Scheduling;

/// <summary>Where the scheduler finds an adapter's PEFT folder by name (the adapter store), and where it reports use.</summary>
public interface IAdapterFolders
{
    bool TryGetFolder(string name, out string folder);

    /// <summary>Every adapter the service can serve, by name.</summary>
    IReadOnlyList<string> Names();

    /// <summary>The prompt template an adapter was trained with (its metadata), or null for the default one.</summary>
    string? PromptTemplate(string name);

    /// <summary>Counts one request served with the adapter.</summary>
    void RecordRequest(string name);
}

/// <summary>No adapters: every name is unknown. Used until an adapter store is registered.</summary>
public sealed class NoAdapterFolders : IAdapterFolders
{
    public bool TryGetFolder(string name, out string folder)
    {
        folder = "";
        return false;
    }

    public IReadOnlyList<string> Names() => [];

    public string? PromptTemplate(string name) => null;

    public void RecordRequest(string name) { }
}
