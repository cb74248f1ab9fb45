namespace ParaphraseService.Training.Datasets;

/// <summary>
/// <see cref="DatasetFormat.Auto"/> for a file whose extension says nothing (<c>data</c>, <c>upload.bin</c>,
/// <c>msr_paraphrase_train.txt</c>): the format its first non-blank line shows. A JSON object is JSON Lines; a header
/// whose columns are separated by tabs is TSV (PAWS when it is PAWS's header), by commas CSV. When both split the
/// header into columns, the one whose columns include the source and target columns wins, tabs when that does not
/// decide. Anything else cannot be told, and the error says what was found.
/// </summary>
internal static class DatasetFormatDetection
{
    // The first non-blank line must begin in this much of the file; a header or first record rarely needs more.
    private const int HeadBytes = 64 * 1024;

    /// <summary>
    /// The format <paramref name="stream"/>'s content shows, and a stream that reads the whole content again from its
    /// start (the caller reads that one, never <paramref name="stream"/>).
    /// </summary>
    /// <exception cref="DatasetException">The content shows no format (the message says what it starts with), or is not UTF-8 text.</exception>
    /// <param name="contentName">The name without a compression extension: the one whose extension a message names.</param>
    public static (DatasetFormat Format, Stream Content) Detect(Stream stream, string name, string contentName, DatasetReadOptions options)
    {
        var head = new byte[HeadBytes];
        var length = 0;
        while (length < head.Length && stream.Read(head, length, head.Length - length) is var read and > 0)
            length += read;
        var content = new HeadThenRest(head, length, stream);
        return (FromHead(head.AsSpan(0, length), complete: length < head.Length, name, contentName, options), content);
    }

    private static DatasetFormat FromHead(ReadOnlySpan<byte> head, bool complete, string name, string contentName, DatasetReadOptions options)
    {
        // Only whole lines are decoded: the head may end inside a character.
        var usable = complete ? head : head[..(head.LastIndexOf((byte)'\n') + 1)];
        SourceLine? firstLine = null;
        var reader = new Utf8LineReader(new MemoryStream(usable.ToArray(), writable: false), name, options.MaxLineBytes);
        while (reader.TryReadLine(out var line))
        {
            if (line.Text is { } text && string.IsNullOrWhiteSpace(text)) continue;
            firstLine = line;
            break;
        }
        if (firstLine is not { Text: { } first })
        {
            // A first line longer than the head (or than a line may be) can only be told when it opens a JSON object.
            var start = head.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? head[3..] : head;
            var at = start.IndexOfAnyExcept((ReadOnlySpan<byte>)[(byte)' ', (byte)'\t', (byte)'\r', (byte)'\n']);
            if (at >= 0 && start[at] == (byte)'{')
                return DatasetFormat.Jsonl;
            throw Unknown(name, contentName, at < 0 ? "the file is empty or blank" : "its first line is too long to be a header");
        }

        var trimmed = first.TrimStart();
        if (trimmed.StartsWith('{'))
            return DatasetFormat.Jsonl;
        if (trimmed.StartsWith('['))
            throw Unknown(name, contentName, "it starts with '[' (a JSON array?); JSON Lines has one object per line");
        var tabs = Columns(first, '\t');
        var commas = Columns(first, ',');
        if (tabs.Length >= 2 && commas.Length >= 2)
            return NamesPairColumns(commas, options) && !NamesPairColumns(tabs, options) ? DatasetFormat.Csv : DatasetFormat.Tsv;
        if (tabs.Length >= 2)
            return DatasetFormat.Tsv;
        if (commas.Length >= 2)
            return DatasetFormat.Csv;
        throw Unknown(name, contentName, $"its first line '{Shorten(first)}' is neither a JSON object nor a header of tab- or comma-separated column names");
    }

    /// <summary>
    /// The header's column names split at <paramref name="delimiter"/> (quotes removed); empty unless every name but the
    /// first is non-empty (pandas' <c>to_csv</c> writes its index column with an empty name: <c>,sentence1,sentence2</c>).
    /// </summary>
    private static string[] Columns(string header, char delimiter)
    {
        var names = header.Split(delimiter).Select(c => c.Trim().Trim('"').Trim()).ToArray();
        return names.Length >= 2 && names.Skip(1).All(n => n.Length > 0) ? names : [];
    }

    /// <summary>Whether the columns include the source and target columns the read will look for.</summary>
    private static bool NamesPairColumns(string[] columns, DatasetReadOptions options)
    {
        bool Has(string? configured, string preferred, string fallback) => configured is not null
            ? columns.Contains(configured, StringComparer.OrdinalIgnoreCase)
            : columns.Contains(preferred, StringComparer.OrdinalIgnoreCase) || columns.Contains(fallback, StringComparer.OrdinalIgnoreCase);
        return Has(options.SourceColumn, "source", "sentence1") && Has(options.TargetColumn, "target", "sentence2");
    }

    private static DatasetException Unknown(string name, string contentName, string why) => new(name,
        $"cannot tell the format from the extension '{Path.GetExtension(contentName)}' nor from the content ({why}): " +
        "give the format (paws, tsv, csv or jsonl) or name the file .tsv, .csv or .jsonl");

    private static string Shorten(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "...");
}
