namespace ParaphraseService.Training.Datasets;

/// <summary>
/// A dataset that cannot be used as it is. <see cref="Problems"/> holds the first
/// <see cref="ParaphraseDatasetReader.MaxReportedProblems"/> problems, each starting with where it is
/// (<c>line 17: expected 4 columns, found 3</c>, <c>header: ...</c>); <see cref="ProblemCount"/> counts them all.
/// </summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string dataset, IReadOnlyList<string> problems, int problemCount)
        : base(Describe(dataset, problems, problemCount))
    {
        Dataset = dataset;
        Problems = problems;
        ProblemCount = problemCount;
    }

    public DatasetException(string dataset, string problem)
        : this(dataset, [problem], 1)
    {
    }

    /// <summary>The file (or other input) the problems are in, as given to the reader.</summary>
    public string Dataset { get; }

    public IReadOnlyList<string> Problems { get; }

    public int ProblemCount { get; }

    private static string Describe(string dataset, IReadOnlyList<string> problems, int problemCount)
    {
        if (problemCount <= 1 && problems.Count == 1)
            return $"{dataset}: {problems[0]}";
        var more = problemCount > problems.Count ? $"; ... and {problemCount - problems.Count} more" : "";
        return $"{dataset}: {problemCount} problems: {string.Join("; ", problems)}{more}";
    }
}
