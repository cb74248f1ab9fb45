namespace ParaphraseService.Training.Datasets;

/// <summary>What <see cref="ParaphraseDatasetReader"/> read: the pairs, in file order, and what it counted.</summary>
public sealed record DatasetReadResult
{
    /// <summary>The paraphrase pairs as the file has them (not yet normalized), in file order; with
    /// <see cref="DatasetReadOptions.BothDirections"/> each row's backward pair follows its forward pair.</summary>
    public required IReadOnlyList<ParaphrasePair> Pairs { get; init; }

    /// <summary>The format read (never <see cref="DatasetFormat.Auto"/>).</summary>
    public required DatasetFormat Format { get; init; }

    /// <summary>Data rows read: every record after the header, malformed or not; blank lines are not rows.</summary>
    public required int RowsRead { get; init; }

    /// <summary>Rows that gave a pair (labelled 1, or no label column).</summary>
    public required int ParaphraseRows { get; init; }

    /// <summary>Rows labelled as not paraphrases (0, or a value outside <see cref="LabelValues"/>), skipped.</summary>
    public required int NonParaphrasesSkipped { get; init; }

    /// <summary>Malformed rows skipped (only in lenient mode; otherwise they fail the read).</summary>
    public required int MalformedRowsSkipped { get; init; }

    /// <summary>Whether each row gave two pairs (<see cref="DatasetReadOptions.BothDirections"/>).</summary>
    public required bool BothDirections { get; init; }

    /// <summary>The first problems of the malformed rows skipped, with their line numbers.</summary>
    public required IReadOnlyList<string> Problems { get; init; }

    /// <summary>The label column given (<see cref="DatasetReadOptions.LabelColumn"/>); null when PAWS's optional <c>label</c> was used.</summary>
    public string? LabelColumn { get; init; }

    /// <summary>The label values taken as paraphrases under <see cref="LabelColumn"/>; null without one.</summary>
    public IReadOnlyList<string>? LabelValues { get; init; }
}
