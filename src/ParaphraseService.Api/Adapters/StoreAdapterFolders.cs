using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Adapters;

/// <summary>The scheduler's view of the adapter store: folders by name, names, prompt templates, request counts.</summary>
public sealed class StoreAdapterFolders(AdapterStore store) : IAdapterFolders
{
    public bool TryGetFolder(string name, out string folder)
    {
        folder = store.GetFolder(name) ?? "";
        return folder.Length > 0;
    }

    public IReadOnlyList<string> Names() => store.List().Where(a => a.Problem is null).Select(a => a.Name).ToList();

    public string? PromptTemplate(string name) => store.Get(name)?.PromptTemplate;

    public void RecordRequest(string name) => store.RecordRequestServed(name);

    /// <summary>Raised when an adapter is replaced or deleted, so a resident copy can be dropped.</summary>
    public event Action<string>? Changed
    {
        add => store.Changed += value;
        remove => store.Changed -= value;
    }
}
