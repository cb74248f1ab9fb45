using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Scheduling;

/// <summary>The bounded line of jobs in front of the scheduler; full means "try again later", never waiting forever.</summary>
public sealed class GenerationQueue(IOptions<SchedulerOptions> options)
{
    private readonly Channel<GenerationJob> _channel = Channel.CreateBounded<GenerationJob>(
        new BoundedChannelOptions(options.Value.MaxQueuedRequests) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    /// <summary>False when the queue is full.</summary>
    public bool TryEnqueue(GenerationJob job) => _channel.Writer.TryWrite(job);

    public int Count => _channel.Reader.Count;

    internal ChannelReader<GenerationJob> Reader => _channel.Reader;

    internal void Close() => _channel.Writer.TryComplete();
}
