using System.Collections.Concurrent;
using System.Threading.Channels;

namespace ParaphraseService.Api.FineTuning;

/// <summary>What happened to a job, as sent on its event stream.</summary>
/// <param name="Type">state (the whole job), step, eval, checkpoint or scored.</param>
public sealed record JobEvent(string Type, object Data);

/// <summary>Progress of running jobs, fanned out to whoever follows them (the SSE endpoint). Slow readers lose old events, never block the trainer.</summary>
public sealed class FineTuneEvents
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Channel<JobEvent>, byte>> _followers = new();

    /// <summary>Follows a job's events until the returned subscription is disposed.</summary>
    public Subscription Follow(string id)
    {
        var channel = Channel.CreateBounded<JobEvent>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        _followers.GetOrAdd(id, _ => new())[channel] = 0;
        return new Subscription(channel.Reader, () =>
        {
            if (_followers.TryGetValue(id, out var set)) set.TryRemove(channel, out _);
        });
    }

    /// <summary>An event of a job this node works on: to its followers here, and to <see cref="Published"/> (other nodes).</summary>
    public void Publish(string id, JobEvent e)
    {
        PublishLocal(id, e);
        Published?.Invoke(id, e);
    }

    /// <summary>An event to this node's followers only (one that another node published).</summary>
    public void PublishLocal(string id, JobEvent e)
    {
        if (!_followers.TryGetValue(id, out var set)) return;
        foreach (var channel in set.Keys) channel.Writer.TryWrite(e);
    }

    /// <summary>Every event published here (cluster mode forwards them to the other nodes).</summary>
    public event Action<string, JobEvent>? Published;

    /// <summary>Jobs someone follows on this node now.</summary>
    public IReadOnlyList<string> Followed() => _followers.Where(f => !f.Value.IsEmpty).Select(f => f.Key).ToList();

    public sealed class Subscription(ChannelReader<JobEvent> reader, Action unsubscribe) : IDisposable
    {
        public ChannelReader<JobEvent> Reader => reader;

        public void Dispose() => unsubscribe();
    }
}
