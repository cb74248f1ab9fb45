namespace ParaphraseService.Api.Adapters;

/// <summary>An <see cref="AdapterStore"/> operation that was refused; <see cref="Problems"/> lists every reason found.</summary>
public sealed class AdapterStoreException : Exception
{
    public AdapterStoreException(AdapterStoreError error, IReadOnlyList<string> problems)
        : base(problems.Count == 1 ? problems[0] : string.Join("; ", problems))
    {
        Error = error;
        Problems = problems;
    }

    public AdapterStoreException(AdapterStoreError error, string problem)
        : this(error, [problem])
    {
    }

    public AdapterStoreError Error { get; }

    public IReadOnlyList<string> Problems { get; }
}
