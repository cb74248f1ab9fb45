using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.Adapters;

/// <summary>An adapter a request named, found once in the catalog: its name, its files and the prompt it is served with.</summary>
public sealed record ResolvedAdapter(string Name, string Folder, PromptTemplate Template);

/// <summary>What the catalog says about a name a request gave.</summary>
public abstract record AdapterLookup
{
    private AdapterLookup() { }

    /// <summary>Not a valid adapter name at all (400).</summary>
    public sealed record Invalid(string Problem) : AdapterLookup;

    /// <summary>A valid name, but no such adapter (404).</summary>
    public sealed record NotFound(string Name) : AdapterLookup;

    /// <summary>Stored, but its files or template cannot be served (409).</summary>
    public sealed record Unusable(string Name, string Problem) : AdapterLookup;

    public sealed record Found(ResolvedAdapter Adapter) : AdapterLookup;
}
