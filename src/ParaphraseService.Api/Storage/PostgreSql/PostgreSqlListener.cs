using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Cluster mode's background connection to the database: migrates the schema at start (retrying until the database
/// answers), then LISTENs for adapter changes, queued jobs and job events from the other nodes. An adapter notification
/// (or the periodic catalog check, or a reconnect) compares the catalog with what this replica knows and raises the
/// adapter manager's change event; a job event is handed to this node's SSE followers; this node's own job events are
/// sent to the others. A lost connection is retried with back-off; what it missed is caught up on reconnect.
/// </summary>
internal sealed class PostgreSqlListener(
    PostgreSqlDatabase db, PostgreSqlAdapterStore adapters, PostgreSqlJobStore jobs, FineTuneEvents events, StorageMetrics metrics,
    IOptions<StorageOptions> options, ILogger<PostgreSqlListener> logger) : BackgroundService
{
    // Notification payloads are limited to 8000 bytes; larger events go without their data (followers read the job).
    private const int MaxPayloadBytes = 7900;

    private readonly Channel<(string Id, JobEvent Event)> _outbox =
        Channel.CreateBounded<(string, JobEvent)>(new BoundedChannelOptions(4096) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await db.StartAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        events.Published += (id, e) => _outbox.Writer.TryWrite((id, e));
        var sending = Task.Run(() => SendAsync(stoppingToken), stoppingToken);
        var check = TimeSpan.FromSeconds(options.Value.CatalogCheckSeconds);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await db.OpenDedicatedAsync(stoppingToken);
                var received = new List<NpgsqlNotificationEventArgs>();
                connection.Notification += (_, notification) => received.Add(notification);
                await using (var listen = new NpgsqlCommand(
                    $"LISTEN {PostgreSqlSchema.AdaptersChannel}; LISTEN {PostgreSqlSchema.JobsChannel}; LISTEN {PostgreSqlSchema.JobEventsChannel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                if (failures > 0) logger.LogInformation("Listening for changes again after {Failures} failed attempt(s); catching up", failures);
                failures = 0;
                db.Reachable();
                CatchUp();
                var nextCheck = DateTime.UtcNow + check;
                var nextFlush = DateTime.UtcNow + TimeSpan.FromSeconds(2);
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken);
                    if (received.Count > 0)
                    {
                        var batch = received.ToList();
                        received.Clear();
                        Handle(batch);
                    }
                    if (DateTime.UtcNow >= nextCheck)
                    {
                        adapters.RefreshCatalog();
                        nextCheck = DateTime.UtcNow + check;
                    }
                    if (DateTime.UtcNow >= nextFlush)
                    {
                        adapters.FlushServed();
                        nextFlush = DateTime.UtcNow + TimeSpan.FromSeconds(2);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                failures++;
                db.Unreachable(e);
                var delay = TimeSpan.FromMilliseconds(Math.Min(10_000, 250 * Math.Pow(2, Math.Min(failures, 6))));
                logger.LogWarning("Change notifications from PostgreSQL interrupted ({Error}); reconnecting in {Delay:F1} s (attempt {Attempt})",
                    e.Message, delay.TotalSeconds, failures);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        _outbox.Writer.TryComplete();
        await sending.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>After (re)connecting: what changed meanwhile, jobs that may wait, and fresh state for whoever follows a job here.</summary>
    private void CatchUp()
    {
        adapters.RefreshCatalog();
        jobs.RaiseWorkAvailable();
        foreach (var id in events.Followed())
            if (jobs.Get(id) is { } job)
                events.PublishLocal(id, new JobEvent("state", job));
    }

    private void Handle(List<NpgsqlNotificationEventArgs> notifications)
    {
        var adaptersChanged = false;
        foreach (var notification in notifications)
        {
            metrics.Notified();
            switch (notification.Channel)
            {
                case PostgreSqlSchema.AdaptersChannel:
                    adaptersChanged = true;
                    break;
                case PostgreSqlSchema.JobsChannel:
                    jobs.RaiseWorkAvailable();
                    break;
                case PostgreSqlSchema.JobEventsChannel:
                    Deliver(notification.Payload);
                    break;
            }
        }
        if (adaptersChanged) adapters.RefreshCatalog();
    }

    private void Deliver(string payload)
    {
        try
        {
            var message = JsonSerializer.Deserialize<EventMessage>(payload, FineTuneJobStore.Json);
            if (message is null || message.Node == db.NodeId) return; // this node's followers had it already
            if (message.Type == "state")
            {
                if (jobs.Get(message.Id) is { } job) events.PublishLocal(message.Id, new JobEvent("state", job));
            }
            else if (message.Data is { } data)
            {
                events.PublishLocal(message.Id, new JobEvent(message.Type, data));
            }
        }
        catch (JsonException e)
        {
            logger.LogWarning("A job event notification could not be read: {Error}", e.Message);
        }
    }

    private async Task SendAsync(CancellationToken stoppingToken)
    {
        await foreach (var (id, e) in _outbox.Reader.ReadAllAsync(CancellationToken.None))
        {
            // A state event carries no data: the job is read from the database by whoever follows it.
            var data = e.Type == "state" ? (JsonElement?)null : JsonSerializer.SerializeToElement(e.Data, FineTuneJobStore.Json);
            var payload = JsonSerializer.Serialize(new EventMessage(db.NodeId, id, e.Type, data), FineTuneJobStore.Json);
            if (System.Text.Encoding.UTF8.GetByteCount(payload) > MaxPayloadBytes)
                payload = JsonSerializer.Serialize(new EventMessage(db.NodeId, id, e.Type, null), FineTuneJobStore.Json);
            try
            {
                db.Run(connection =>
                {
                    using var command = new NpgsqlCommand($"SELECT pg_notify('{PostgreSqlSchema.JobEventsChannel}', $1)", connection) { Parameters = { new() { Value = payload } } };
                    return command.ExecuteNonQuery();
                });
            }
            catch (StorageUnavailableException)
            {
                // Followers elsewhere catch up with the job's state when the connection is back.
            }
            if (stoppingToken.IsCancellationRequested && _outbox.Reader.Count == 0) break;
        }
    }

    private sealed record EventMessage(string Node, string Id, string Type, JsonElement? Data);
}
