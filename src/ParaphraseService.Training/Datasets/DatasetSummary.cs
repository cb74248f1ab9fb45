namespace ParaphraseService.Training.Datasets;

/// <summary>
/// What happened to a dataset on its way to training, for the fine-tune job to store and report. Every pair read is
/// counted once, under the first rule that dropped it, or as train or eval:
/// <c>PairsRead = CopiesDropped + DuplicatesDropped + TooLongDropped + NotSampled + TrainCount + EvalCount</c>.
/// </summary>
public sealed record DatasetSummary
{
    /// <summary>The format read; null for pairs that did not come from a file.</summary>
    public DatasetFormat? Format { get; init; }

    /// <summary>Data rows read (header and blank lines not counted), whatever became of them.</summary>
    public required int RowsRead { get; init; }

    /// <summary>Rows that were paraphrases (labelled 1, or with no label).</summary>
    public required int ParaphraseRows { get; init; }

    /// <summary>Rows labelled as not paraphrases (0, or a value outside <see cref="LabelValues"/>), skipped.</summary>
    public required int NonParaphrasesSkipped { get; init; }

    /// <summary>Malformed rows skipped in lenient mode.</summary>
    public required int MalformedRowsSkipped { get; init; }

    /// <summary>Whether every row gave a pair each way.</summary>
    public required bool BothDirections { get; init; }

    /// <summary>Pairs read: <see cref="ParaphraseRows"/>, twice that with <see cref="BothDirections"/>.</summary>
    public required int PairsRead { get; init; }

    /// <summary>Pairs whose target is the source again (after normalization, ignoring case).</summary>
    public required int CopiesDropped { get; init; }

    /// <summary>Pairs identical to an earlier pair (after normalization); the first stays.</summary>
    public required int DuplicatesDropped { get; init; }

    /// <summary>
    /// Pairs too long: a side over the character or token limit, or a training example (prompt and target) over
    /// <see cref="MaxTokensPerExample"/>.
    /// </summary>
    public required int TooLongDropped { get; init; }

    /// <summary>Pairs left out by sampling.</summary>
    public required int NotSampled { get; init; }

    public required int TrainCount { get; init; }

    public required int EvalCount { get; init; }

    /// <summary>
    /// False (the rule): no sentence of an eval pair appears in a train pair. True only when the pairs share
    /// sentences so much that no such split exists, and the pairs were split one by one.
    /// </summary>
    public required bool EvalSharesSentencesWithTrain { get; init; }

    /// <summary>The seed of the sampling and the split.</summary>
    public required int Seed { get; init; }

    /// <summary>The first problems of the malformed rows skipped, with their line numbers.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>The label column the rows were filtered by (<see cref="DatasetReadOptions.LabelColumn"/>); null when none was given.</summary>
    public string? LabelColumn { get; init; }

    /// <summary>The label values taken as paraphrases under <see cref="LabelColumn"/>.</summary>
    public IReadOnlyList<string>? LabelValues { get; init; }

    /// <summary>The most tokens a training example (rendered prompt and target) may have; null when not limited.</summary>
    public int? MaxTokensPerExample { get; init; }
}
