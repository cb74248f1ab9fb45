namespace ParaphraseService.Api.Adapters;

/// <summary>
/// Where adapters are stored, as the adapter manager sees it: what exists, where its files are, and a notice whenever
/// one is published, replaced or deleted (raised by the storage itself, whichever storage it is).
/// </summary>
public interface IAdapterSource
{
    /// <summary>Every stored adapter, by name (with <see cref="AdapterInfo.Problem"/> set for folders that cannot be read).</summary>
    IReadOnlyList<AdapterInfo> List();

    /// <summary>The folder holding the adapter's PEFT files; null when there is none of that name.</summary>
    string? GetFolder(string name);

    /// <summary>An adapter was published, replaced or deleted (the argument is its name).</summary>
    event Action<string>? Changed;

    /// <summary>Counts one request served with the adapter.</summary>
    void RecordRequestServed(string name);
}
