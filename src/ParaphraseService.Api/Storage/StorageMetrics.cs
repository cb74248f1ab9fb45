using System.Diagnostics.Metrics;
using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Storage;

/// <summary>What storage and the job queue report to /metrics: database reachability, failures, claims and lost leases.</summary>
public sealed class StorageMetrics
{
    private readonly Counter<long> _errors;
    private readonly Counter<long> _claims;
    private readonly Counter<long> _leasesLost;
    private readonly Counter<long> _notifications;
    private volatile bool _databaseUp = true;

    public StorageMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(ServiceMetrics.MeterName);
        _errors = meter.CreateCounter<long>("paraphrase.storage.errors", "{error}", "Storage operations that failed because the database could not be reached.");
        _claims = meter.CreateCounter<long>("paraphrase.fine_tune.claims", "{job}", "Fine-tune jobs this node claimed to train.");
        _leasesLost = meter.CreateCounter<long>("paraphrase.fine_tune.leases_lost", "{job}", "Fine-tune jobs whose lease this node lost (its work since the last checkpoint discarded).");
        _notifications = meter.CreateCounter<long>("paraphrase.storage.notifications", "{notification}", "Change notifications received from the database.");
        meter.CreateObservableGauge("paraphrase.storage.database_up", () => _databaseUp ? 1 : 0, "{bool}", "1 while the shared database answers (cluster mode; always 1 without one).");
    }

    public bool DatabaseUp => _databaseUp;

    public void Up() => _databaseUp = true;

    public void Down()
    {
        _databaseUp = false;
        _errors.Add(1);
    }

    public void Claimed() => _claims.Add(1);

    public void LeaseLost() => _leasesLost.Add(1);

    public void Notified() => _notifications.Add(1);
}
