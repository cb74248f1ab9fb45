using System.Collections.Immutable;

namespace ParaphraseService.Api.Scheduling;

/// <summary>Names of the adapters resident on the model, published by the scheduler for readers on other threads.</summary>
public sealed class ResidentAdapters
{
    private volatile ImmutableHashSet<string> _names = ImmutableHashSet<string>.Empty;

    public bool Contains(string name) => _names.Contains(name);

    public IReadOnlySet<string> Names => _names;

    internal void Set(IEnumerable<string> names) => _names = names.ToImmutableHashSet(StringComparer.Ordinal);
}
