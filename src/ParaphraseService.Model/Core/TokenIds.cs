using System.Collections;

namespace ParaphraseService.Model.Core;

/// <summary>Token ids compared by value, so that a config record holding them equals the same config read again.</summary>
internal sealed class TokenIds(IEnumerable<int> ids) : IReadOnlyList<int>, IEquatable<TokenIds>
{
    private readonly int[] _ids = [.. ids];

    public int Count => _ids.Length;

    public int this[int index] => _ids[index];

    public bool Equals(TokenIds? other) => other is not null && _ids.AsSpan().SequenceEqual(other._ids);

    public override bool Equals(object? obj) => Equals(obj as TokenIds);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var id in _ids) hash.Add(id);
        return hash.ToHashCode();
    }

    public override string ToString() => $"[{string.Join(", ", _ids)}]";

    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_ids).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
