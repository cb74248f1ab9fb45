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

    public void Publish(string id, JobEvent e)
    {
        if (!_followers.TryGetValue(id, out var set)) return;
        foreach (var channel in set.Keys) channel.Writer.TryWrite(e);
    }

    public sealed class Subscription(ChannelReader<JobEvent> reader, Action unsubscribe) : IDisposable
    {
        public ChannelReader<JobEvent> Reader => reader;

        public void Dispose() => unsubscribe();
    }
}
