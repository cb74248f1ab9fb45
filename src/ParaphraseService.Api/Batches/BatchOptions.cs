using System.ComponentModel.DataAnnotations;

namespace ParaphraseService.Api.Batches;

/// <summary>The <c>Batches</c> configuration section: server-side batches of paraphrase requests (<c>POST /batches</c>).</summary>
public sealed class BatchOptions
{
    public const string Section = "Batches";

    /// <summary>
    /// A line may be at most what <c>POST /paraphrase</c> accepts as a body (1 MiB); a longer one is that line's error.
    /// </summary>
    public const int MaxLineBytes = 1 << 20;

    /// <summary>Accept batches (and run them on serving nodes).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Most lines (requests) in one file; more is a 413.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Batches:MaxLines must be 1-1000000.")]
    public int MaxLines { get; set; } = 50_000;

    /// <summary>Largest file; more is a 413. The file is read whole before the batch is stored.</summary>
    [Range(1024L, 4L << 30, ErrorMessage = "Batches:MaxBytes must be between 1 KiB and 4 GiB.")]
    public long MaxBytes { get; set; } = 64L << 20;

    /// <summary>
    /// Lines a node keeps in flight at once (handed to the scheduler's background lane); the rest wait in the store.
    /// Enough to keep the background rows busy; more only makes lines wait in the queue.
    /// </summary>
    [Range(1, 256, ErrorMessage = "Batches:Concurrency must be 1-256.")]
    public int Concurrency { get; set; } = 4;

    /// <summary>
    /// A line taken this many times without finishing (its node restarted or lost the batch each time) fails with an
    /// error instead of being tried again: a line that brings its node down cannot stop the batch.
    /// </summary>
    [Range(1, 100, ErrorMessage = "Batches:MaxAttempts must be 1-100.")]
    public int MaxAttempts { get; set; } = 5;
}
