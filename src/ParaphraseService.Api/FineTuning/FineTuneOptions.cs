using System.ComponentModel.DataAnnotations;

namespace ParaphraseService.Api.FineTuning;

/// <summary>The <c>FineTunes</c> configuration section: background LoRA fine-tune jobs.</summary>
public sealed class FineTuneOptions
{
    public const string Section = "FineTunes";

    /// <summary>
    /// Accept fine-tune jobs. On a CPU int8 model a job needs each layer's int8 matrix beside fbgemm's packed copy (one
    /// more byte per weight): derived from the checkpoint before the first job starts, freed when the last one ends.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The job database (SQLite), uploaded datasets and checkpoints; a relative path is taken from the content root.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "FineTunes:Directory is required.")]
    public string Directory { get; set; } = Path.Combine("data", "fine-tunes");

    /// <summary>Jobs that train at once (their steps interleave); the rest wait in order.</summary>
    [Range(1, 16)]
    public int MaxConcurrentJobs { get; set; } = 1;

    /// <summary>
    /// Most examples a job runs through the model in one go (its batches are split, with the same result): a request
    /// that arrives meanwhile waits for at most one such pass.
    /// </summary>
    [Range(1, 256)]
    public int MaxExamplesPerPass { get; set; } = 1;

    /// <summary>Default checkpoint interval in optimizer steps (a job may set its own).</summary>
    [Range(1, 1_000_000)]
    public int CheckpointEverySteps { get; set; } = 50;

    /// <summary>Largest dataset upload; default 256 MB.</summary>
    [Range(1L, long.MaxValue)]
    public long MaxDatasetBytes { get; set; } = 256L << 20;

    /// <summary>
    /// Folders whose files a job may name as its dataset (JSON <c>datasetPath</c>); empty allows none, so datasets can
    /// only be uploaded.
    /// </summary>
    public List<string> DatasetRoots { get; set; } = [];
}
