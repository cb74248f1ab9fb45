using System.Diagnostics.Metrics;
using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Batches;

/// <summary>What batches report to /metrics: lines finished by outcome, batches waiting and running, lines in the queue.</summary>
public sealed class BatchMetrics
{
    private readonly Counter<long> _lines;

    public BatchMetrics(IMeterFactory meters, IBatchStore store, GenerationQueue queue, ILogger<BatchMetrics> logger)
    {
        var meter = meters.Create(ServiceMetrics.MeterName);
        _lines = meter.CreateCounter<long>("paraphrase.batches.lines", "{line}",
            "Batch lines finished, by outcome (succeeded, failed): by the node that ran them, or for lines refused as their file was read, by the node that accepted it.");
        meter.CreateObservableGauge("paraphrase.batches.unfinished", () => Unfinished(store, logger), "{batch}", "Batches queued and running (every node's, from the store).");
        meter.CreateObservableGauge("paraphrase.batches.queued_jobs", () => queue.BackgroundCount, "{job}",
            "Batch texts waiting in the scheduler's background lane (behind every interactive request).");
    }

    public void Finished(LineState outcome, int count = 1) =>
        _lines.Add(count, new KeyValuePair<string, object?>("outcome", outcome.ToString().ToLowerInvariant()));

    private static IEnumerable<Measurement<int>> Unfinished(IBatchStore store, ILogger logger)
    {
        (int Queued, int Running) counts;
        try
        {
            counts = store.CountUnfinished();
        }
        catch (Exception e)
        {
            // A scrape while the database is down shows no batch gauge rather than failing.
            logger.LogDebug("Counting batches for /metrics failed: {Error}", e.Message);
            return [];
        }
        return
        [
            new Measurement<int>(counts.Queued, new KeyValuePair<string, object?>("state", "queued")),
            new Measurement<int>(counts.Running, new KeyValuePair<string, object?>("state", "running")),
        ];
    }
}
