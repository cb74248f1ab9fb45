namespace ParaphraseService.Api.Batches;

/// <summary>
/// Batches and their lines, durable in the store that holds fine-tune jobs: the embedded SQLite file
/// (<see cref="BatchStore"/>) or the cluster's PostgreSQL database. A batch is run by one node at a time, under a
/// lease it renews: claimed when queued or when its holder's lease ran out, and every write a runner makes (taking
/// lines, recording a line's result, completing) is conditional on still holding it, so two nodes never run the same
/// lines at once and a node that lost the batch changes nothing. Each line's result is stored as it finishes, so a
/// batch taken over (or resumed after a restart) runs only the lines that had not finished.
/// </summary>
public interface IBatchStore
{
    /// <summary>Records a queued batch and all its lines (refused lines already failed with their errors) in one transaction.</summary>
    void Create(string id, IReadOnlyList<BatchLineInput> lines, DateTimeOffset now);

    Batch? Get(string id);

    /// <summary>The <paramref name="limit"/> newest batches, newest first.</summary>
    IReadOnlyList<Batch> List(int limit);

    /// <summary>Batches queued and running (for metrics).</summary>
    (int Queued, int Running) CountUnfinished();

    /// <summary>
    /// At start: an embedded store gives back the batches the last process held (its file belongs to this process, so
    /// nobody else holds them); a shared one does nothing (their leases run out).
    /// </summary>
    void Recover();

    /// <summary>
    /// Claims the oldest batch that is queued or whose runner's lease ran out, for this node, under a lease of
    /// <paramref name="lease"/>; null when there is none.
    /// </summary>
    string? ClaimNext(TimeSpan lease);

    /// <summary>Renews this node's leases; returns the ids it no longer holds (lease taken over, batch cancelled or ended).</summary>
    IReadOnlyCollection<string> Renew(IReadOnlyCollection<string> ids, TimeSpan lease);

    /// <summary>Gives held batches back to the queue (this node stops): another node, or the next start, resumes them.</summary>
    void Release(IReadOnlyCollection<string> ids);

    /// <summary>
    /// Takes up to <paramref name="count"/> pending lines after <paramref name="afterLine"/>, in order, counting an
    /// attempt for each.
    /// </summary>
    /// <exception cref="BatchLeaseLostException">This node no longer holds the batch.</exception>
    IReadOnlyList<PendingLine> TakePending(string id, int afterLine, int count);

    /// <summary>
    /// Stores a pending line's outcome (<see cref="LineState.Succeeded"/> with the response JSON, or
    /// <see cref="LineState.Failed"/> with the error JSON) and counts it; false when this node no longer holds the batch
    /// or the line is no longer pending (cancelled meanwhile): nothing is changed then.
    /// </summary>
    bool RecordLine(string id, int line, LineState state, string result, DateTimeOffset now);

    /// <summary>running → completed, by the node holding it, once no line is pending; false otherwise.</summary>
    bool TryComplete(string id, DateTimeOffset now);

    /// <summary>A batch that cannot go on (held by this node) ends as failed; its pending lines are cancelled.</summary>
    bool TryFail(string id, string error, DateTimeOffset now);

    /// <summary>
    /// Cancels a queued or running batch (whichever node runs it): its pending lines become cancelled at once, so no
    /// result is stored for them afterwards; false when it had already ended.
    /// </summary>
    bool Cancel(string id, DateTimeOffset now);

    /// <summary>Every line in input order, read in pages (never the whole batch in memory).</summary>
    IEnumerable<StoredLine> Lines(string id);
}

/// <summary>This node's lease on a batch ran out or the batch ended: it must stop running it.</summary>
public sealed class BatchLeaseLostException(string id) : Exception($"This node no longer holds batch {id} (its lease ran out, or it was cancelled).")
{
    public string BatchId => id;
}
