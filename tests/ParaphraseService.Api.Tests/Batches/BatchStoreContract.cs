using System.Diagnostics;
using ParaphraseService.Api.Batches;
using Xunit;

namespace ParaphraseService.Api.Tests.Batches;

/// <summary>
/// What every <see cref="IBatchStore"/> must do, run against the embedded store (SQLite, here) and the shared one
/// (PostgreSQL, in the cluster tests, which link this file): two nodes' views of one store, a lease that one holds and
/// the other takes over only once it ran out, writes of a node that lost the batch changing nothing, exact counts.
/// </summary>
public static class BatchStoreContract
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    private static BatchLineInput Request(int line) => new(line, $"c{line}", $$"""{"text": "line {{line}}"}""", null);

    /// <param name="a">Node a's view of the store.</param>
    /// <param name="b">Node b's view of the same store.</param>
    public static async Task LeasesKeepTwoNodesOffEachOthersLinesAndCountsStayExact(IBatchStore a, IBatchStore b)
    {
        var id = "batch_" + Guid.NewGuid().ToString("N");
        a.Create(id, [Request(1), Request(2), Request(3), Request(4), new BatchLineInput(5, null, null, new BatchLineError(400, "Invalid request", "bad"))], Now);
        var created = b.Get(id)!;
        Assert.Equal((BatchState.Queued, 5, 0, 1, 0, 4), (created.Status, created.Lines, created.Succeeded, created.Failed, created.Cancelled, created.Pending));
        Assert.Contains(b.List(1000), x => x.Id == id);

        // a holds it: b finds nothing to claim, and cannot take lines or record results.
        Assert.Equal(id, a.ClaimNext(TimeSpan.FromSeconds(2)));
        Assert.Null(b.ClaimNext(TimeSpan.FromSeconds(2)));
        var taken = a.TakePending(id, 0, 2);
        Assert.Equal([(1, "c1", 1), (2, "c2", 1)], taken.Select(l => (l.Line, l.CustomId, l.Attempts)));
        Assert.Equal("""{"text": "line 1"}""", taken[0].Request);
        Assert.True(a.RecordLine(id, 1, LineState.Succeeded, """{"ok":1}""", Now));
        Assert.False(a.RecordLine(id, 1, LineState.Succeeded, """{"ok":2}""", Now)); // a line is recorded once
        Assert.False(b.RecordLine(id, 2, LineState.Succeeded, """{"ok":3}""", Now));
        Assert.Throws<BatchLeaseLostException>(() => b.TakePending(id, 0, 10));
        Assert.False(a.TryComplete(id, Now)); // lines are pending
        Assert.Empty(a.Renew([id], TimeSpan.FromMilliseconds(300)));

        // a stops renewing: once its lease runs out, b takes the batch over (watched in the store, not timed).
        var clock = Stopwatch.StartNew();
        string? claimed;
        while ((claimed = b.ClaimNext(TimeSpan.FromMinutes(1))) is null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "b never took the batch over");
            await Task.Delay(20);
        }
        Assert.Equal(id, claimed);
        Assert.Equal([id], a.Renew([id], TimeSpan.FromMinutes(1))); // a learns it lost the batch...
        Assert.False(a.RecordLine(id, 2, LineState.Succeeded, """{"late":true}""", Now)); // ...and what it finishes late is discarded
        Assert.Throws<BatchLeaseLostException>(() => a.TakePending(id, 0, 10));

        // b runs only what is left: line 2 again (a never recorded it), then 3 and 4; never line 1 nor the refused line 5.
        var rest = b.TakePending(id, 0, 10);
        Assert.Equal([(2, 2), (3, 1), (4, 1)], rest.Select(l => (l.Line, l.Attempts)));
        Assert.True(b.RecordLine(id, 2, LineState.Failed, """{"status":404,"title":"Unknown adapter","detail":"x"}""", Now));

        // A cancel (from any node) ends the pending lines at once; a result arriving after it changes nothing.
        Assert.True(a.Cancel(id, Now));
        Assert.False(b.RecordLine(id, 3, LineState.Succeeded, """{"late":true}""", Now));
        Assert.False(a.Cancel(id, Now));
        Assert.False(b.TryComplete(id, Now));
        Assert.Equal([id], b.Renew([id], TimeSpan.FromMinutes(1)));
        var cancelled = a.Get(id)!;
        Assert.Equal((BatchState.Cancelled, 1, 2, 2, 0), (cancelled.Status, cancelled.Succeeded, cancelled.Failed, cancelled.Cancelled, cancelled.Pending));
        Assert.NotNull(cancelled.FinishedAt);
        var lines = a.Lines(id).ToList();
        Assert.Equal([1, 2, 3, 4, 5], lines.Select(l => l.Line));
        Assert.Equal([LineState.Succeeded, LineState.Failed, LineState.Cancelled, LineState.Cancelled, LineState.Failed], lines.Select(l => l.State));
        Assert.Equal("""{"ok":1}""", lines[0].Result);
        Assert.Null(lines[2].Result);
        Assert.Contains("\"bad\"", lines[4].Result);
    }

    /// <summary>A batch runs to completion; a node that stops gives it back at once; the results page through long batches in order.</summary>
    public static void ABatchGivenBackIsClaimedAtOnceAndCompletes(IBatchStore a, IBatchStore b)
    {
        var id = "batch_" + Guid.NewGuid().ToString("N");
        a.Create(id, Enumerable.Range(1, 600).Select(Request).ToList(), Now);
        Assert.Equal(id, a.ClaimNext(TimeSpan.FromMinutes(5)));
        foreach (var line in a.TakePending(id, 0, 300))
            Assert.True(a.RecordLine(id, line.Line, LineState.Succeeded, "{}", Now));
        a.Release([id]);
        Assert.Equal(BatchState.Queued, b.Get(id)!.Status);
        Assert.Equal(id, b.ClaimNext(TimeSpan.FromMinutes(5))); // no waiting for a's lease: it gave the batch back
        Assert.True(b.CountUnfinished().Running >= 1);
        var after = 0;
        while (b.TakePending(id, after, 128) is { Count: > 0 } lines)
        {
            Assert.All(lines, l => Assert.Equal(1, l.Attempts));
            foreach (var line in lines)
                Assert.True(b.RecordLine(id, line.Line, LineState.Succeeded, "{}", Now));
            after = lines[^1].Line;
        }
        Assert.True(b.TryComplete(id, Now));
        Assert.False(b.Cancel(id, Now)); // ended: nothing to cancel
        var done = a.Get(id)!;
        Assert.Equal((BatchState.Completed, 600, 0), (done.Status, done.Succeeded, done.Pending));
        Assert.Equal(Enumerable.Range(1, 600), a.Lines(id).Select(l => l.Line));
    }
}
