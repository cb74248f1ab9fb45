namespace ParaphraseService.Training.Datasets;

/// <summary>One training example: <see cref="Source"/> rewritten as <see cref="Target"/>.</summary>
public sealed record ParaphrasePair(string Source, string Target);
