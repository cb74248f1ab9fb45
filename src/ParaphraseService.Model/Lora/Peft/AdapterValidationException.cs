namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// An adapter folder, or one of its files, that cannot be used. Every problem found is listed at once, so a user who
/// uploads a broken adapter learns everything that is wrong with it from one attempt.
/// </summary>
public sealed class AdapterValidationException : Exception
{
    public AdapterValidationException(string path, IReadOnlyList<string> problems, Exception? inner = null)
        : base(Format(path, problems), inner)
    {
        Path = path;
        Problems = problems;
    }

    public AdapterValidationException(string path, string problem, Exception? inner = null)
        : this(path, [problem], inner)
    {
    }

    /// <summary>The adapter folder or file the problems were found in.</summary>
    public string Path { get; }

    public IReadOnlyList<string> Problems { get; }

    private static string Format(string path, IReadOnlyList<string> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        if (problems.Count == 0)
        {
            throw new ArgumentException("An adapter validation error needs at least one problem.", nameof(problems));
        }
        return problems.Count == 1
            ? $"{path}: {problems[0]}"
            : $"{path}: {problems.Count} problems: " + string.Join("; ", problems.Select((p, i) => $"({i + 1}) {p}"));
    }
}
