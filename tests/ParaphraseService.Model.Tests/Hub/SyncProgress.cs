namespace ParaphraseService.Model.Tests.Hub;

/// <summary>Records reports as they happen (Progress&lt;T&gt; would post them later to the thread pool).</summary>
internal sealed class SyncProgress<T> : IProgress<T>
{
    private readonly List<T> _reports = [];

    public IReadOnlyList<T> Reports
    {
        get
        {
            lock (_reports)
                return [.. _reports];
        }
    }

    public void Report(T value)
    {
        lock (_reports)
            _reports.Add(value);
    }
}
