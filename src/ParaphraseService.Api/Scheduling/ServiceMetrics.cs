using System.Diagnostics.Metrics;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Scheduling;

/// <summary>What the scheduler reports to /metrics (OpenTelemetry, exported in Prometheus format).</summary>
public sealed class ServiceMetrics
{
    public const string MeterName = "ParaphraseService";

    private readonly Counter<long> _tokens;
    private readonly Counter<long> _adapterRequests;
    private readonly Histogram<int> _batchRows;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _requestDuration;
    private readonly Counter<long> _decodeSteps;
    private readonly Counter<long> _draftedTokens;
    private readonly Counter<long> _acceptedTokens;
    private readonly TokenRate _tokenRate;

    // Histogram buckets in the instruments' own units: the SDK's defaults (0 to 10,000) are meant for milliseconds and
    // put every latency in seconds, and every batch of up to 5 rows, into one bucket.
    private static readonly InstrumentAdvice<double> Seconds = new()
    {
        HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    };
    private static readonly InstrumentAdvice<int> Rows = new() { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] };

    public ServiceMetrics(IMeterFactory meters, GenerationQueue queue, TimeProvider? time = null)
    {
        _tokenRate = new TokenRate(time);
        var meter = meters.Create(MeterName);
        _tokens = meter.CreateCounter<long>("paraphrase.generated_tokens", "{token}", "Tokens generated; its rate is tokens per second.");
        _adapterRequests = meter.CreateCounter<long>("paraphrase.adapter_requests", "{request}", "Requests served per adapter.");
        _batchRows = meter.CreateHistogram("paraphrase.batch_rows", "{row}", "Sequences in each decode step.", tags: null, Rows);
        _timeToFirstToken = meter.CreateHistogram("paraphrase.time_to_first_token", "s", "From enqueue to the first generated token.", tags: null, Seconds);
        _requestDuration = meter.CreateHistogram("paraphrase.request_duration", "s", "From enqueue to the last token.", tags: null, Seconds);
        _decodeSteps = meter.CreateCounter<long>("paraphrase.sequence_steps", "{step}",
            "Decode steps summed over the sequences in them; generated tokens over this is tokens per step (above 1 with speculation).");
        _draftedTokens = meter.CreateCounter<long>("paraphrase.speculation.drafted_tokens", "{token}", "Draft tokens verified (prompt lookup).");
        _acceptedTokens = meter.CreateCounter<long>("paraphrase.speculation.accepted_tokens", "{token}",
            "Draft tokens accepted; over drafted tokens, the acceptance rate.");
        meter.CreateObservableGauge("paraphrase.queue_depth", () => queue.Count, "{request}", "Requests waiting for a batch slot.");
        meter.CreateObservableGauge("paraphrase.active_rows", () => ActiveRows, "{row}", "Sequences being decoded.");
    }

    /// <summary>Set by the scheduler after every step.</summary>
    public int ActiveRows { get; set; }

    /// <summary>Generated tokens per second over the last few seconds (Prometheus computes its own rate from the counter).</summary>
    public double TokensPerSecond => _tokenRate.PerSecond();

    /// <param name="work">The decode work of this step (steps, drafted and accepted tokens), as a difference of the batcher's totals.</param>
    public void Step(int rows, int tokens, SpeculationStats work)
    {
        _decodeSteps.Add(work.RowSteps);
        _draftedTokens.Add(work.Drafted);
        _acceptedTokens.Add(work.Accepted);
        _batchRows.Record(rows);
        _tokens.Add(tokens);
        _tokenRate.Add(tokens);
    }

    public void FirstToken(TimeSpan sinceEnqueue) => _timeToFirstToken.Record(sinceEnqueue.TotalSeconds);
    public void Completed(TimeSpan sinceEnqueue) => _requestDuration.Record(sinceEnqueue.TotalSeconds);
    public void AdapterRequest(string adapter) => _adapterRequests.Add(1, new KeyValuePair<string, object?>("adapter", adapter));
}
