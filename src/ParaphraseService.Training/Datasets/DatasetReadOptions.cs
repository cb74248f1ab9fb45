namespace ParaphraseService.Training.Datasets;

/// <summary>How <see cref="ParaphraseDatasetReader"/> reads a file.</summary>
public sealed record DatasetReadOptions
{
    /// <summary>The default most bytes one line (or one CSV record) may have: 1 MiB.</summary>
    public const int DefaultMaxLineBytes = 1 << 20;

    /// <summary>The file format; <see cref="DatasetFormat.Auto"/> (default) tells it from the extension.</summary>
    public DatasetFormat Format { get; init; } = DatasetFormat.Auto;

    /// <summary>
    /// The column (TSV, CSV) or JSON property (JSONL) holding the source text. Null (default): <c>source</c>, else
    /// <c>sentence1</c>. A name given here is required as given. Names are matched ignoring case.
    /// </summary>
    public string? SourceColumn { get; init; }

    /// <summary>As <see cref="SourceColumn"/> for the target text: default <c>target</c>, else <c>sentence2</c>.</summary>
    public string? TargetColumn { get; init; }

    /// <summary>
    /// The label column (TSV, CSV) or property (JSONL) that says which rows are paraphrases. Null (default): an optional
    /// column named <c>label</c> with 0 or 1, as PAWS has: rows labelled 1 are paraphrases, rows labelled 0 are skipped
    /// and counted (<see cref="DatasetReadResult.NonParaphrasesSkipped"/>), any other value is a problem of its row.
    /// A name given here is required (a header without it is refused, listing the columns), matched ignoring case;
    /// rows whose label is one of <see cref="LabelValues"/> are paraphrases, rows with another label are skipped and
    /// counted, rows with an empty label are problems. E.g. MRPC: <c>Quality</c>, values <c>["1"]</c>.
    /// </summary>
    public string? LabelColumn { get; init; }

    /// <summary>
    /// With <see cref="LabelColumn"/>: the label values that mean "paraphrase", compared trimmed and ignoring case
    /// (a JSON number or boolean as written: <c>1</c>, <c>true</c>). Null: <c>["1"]</c>. Needs <see cref="LabelColumn"/>.
    /// </summary>
    public IReadOnlyList<string>? LabelValues { get; init; }

    /// <summary>The values that mean "paraphrase" under <see cref="LabelColumn"/>.</summary>
    internal IReadOnlyList<string> ParaphraseLabels => LabelValues ?? DefaultLabelValues;

    /// <summary>The default <see cref="LabelValues"/>.</summary>
    public static IReadOnlyList<string> DefaultLabelValues { get; } = ["1"];

    /// <summary>Also read every pair backwards (target → source), doubling the pairs: a paraphrase goes both ways.</summary>
    public bool BothDirections { get; init; }

    /// <summary>
    /// False (default): any malformed row fails the whole read with a <see cref="DatasetException"/> listing the
    /// problems. True: malformed rows are skipped and counted (<see cref="DatasetReadResult.MalformedRowsSkipped"/>).
    /// Problems with the file as a whole (not UTF-8, no header, header without the columns, no pairs) fail either way.
    /// </summary>
    public bool Lenient { get; init; }

    /// <summary>
    /// The most bytes one line may have (one record, for CSV fields that span lines). A longer line is a problem of
    /// that line; it is skipped over without being held in memory.
    /// </summary>
    public int MaxLineBytes { get; init; } = DefaultMaxLineBytes;

    /// <summary>
    /// The most bytes gzip-compressed content may decompress to (a small file can hold gigabytes of text); more is a
    /// <see cref="DatasetException"/>. Null (default): no limit. Plain files are not limited here.
    /// </summary>
    public long? MaxDecompressedBytes { get; init; }

    /// <summary>
    /// Read <see cref="DatasetFormat.Tsv"/> fields with RFC 4180 quotes (as pandas writes a TSV whose text has quotes).
    /// Off by default: TSV has no quoting, and a sentence may start with a quote mark. Never applies to PAWS.
    /// </summary>
    public bool TsvQuoting { get; init; }
}
