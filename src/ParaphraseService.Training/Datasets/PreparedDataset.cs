namespace ParaphraseService.Training.Datasets;

/// <summary>Normalized, filtered pairs split for training and evaluation (each in the order read), and how they came to be.</summary>
public sealed record PreparedDataset(IReadOnlyList<ParaphrasePair> Train, IReadOnlyList<ParaphrasePair> Eval, DatasetSummary Summary);
