using System.Text.Json;

namespace ParaphraseService.Training.Datasets;

/// <summary>
/// Reads paraphrase pairs from PAWS TSV, TSV or CSV with named columns, or JSON Lines (<see cref="DatasetFormat"/>):
/// UTF-8 with or without a BOM, LF or CRLF line ends, plain or gzip-compressed (<c>.jsonl.gz</c>, told by the content). Every problem names its line (1-based, the header is line 1):
/// <c>line 17: expected 4 columns, found 3</c>. By default any malformed row fails the read, with the first
/// <see cref="MaxReportedProblems"/> problems and their count; <see cref="DatasetReadOptions.Lenient"/> skips and
/// counts them instead. Text is returned as the file has it; <see cref="DatasetPreparation"/> normalizes it.
/// </summary>
public static class ParaphraseDatasetReader
{
    /// <summary>The most problems a <see cref="DatasetException"/> or <see cref="DatasetReadResult.Problems"/> lists (the rest are counted).</summary>
    public const int MaxReportedProblems = 20;

    private const int MaxQuotedValueChars = 40;
    private const string DefaultLabel = "label";
    private static readonly string[] s_pawsHeader = ["id", "sentence1", "sentence2", DefaultLabel];

    /// <summary>
    /// The format a file name's extension says: <c>.tsv</c> and <c>.tab</c> → TSV (read as PAWS when the header is PAWS's),
    /// <c>.csv</c>, <c>.jsonl</c>/<c>.ndjson</c>, each also with <c>.gz</c> after it (gzip-compressed); else null.
    /// </summary>
    public static DatasetFormat? FormatFromExtension(string fileName)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        return Path.GetExtension(DatasetContent.WithoutCompression(fileName)).ToLowerInvariant() switch
        {
            ".tsv" or ".tab" => DatasetFormat.Tsv,
            ".csv" => DatasetFormat.Csv,
            ".jsonl" or ".ndjson" => DatasetFormat.Jsonl,
            _ => null,
        };
    }

    /// <summary>Reads the file at <paramref name="path"/>; messages name the file by its name, not its folder.</summary>
    public static DatasetReadResult Read(string path, DatasetReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        return Read(stream, Path.GetFileName(path), options, cancellationToken);
    }

    /// <summary>Reads <paramref name="stream"/>; <paramref name="name"/> (a file name) starts every message and, when the
    /// format is <see cref="DatasetFormat.Auto"/>, gives it by its extension, or else the content does (see
    /// <see cref="DatasetFormat.Auto"/>).</summary>
    public static DatasetReadResult Read(Stream stream, string name, DatasetReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(name);
        options ??= new DatasetReadOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxLineBytes, 16, nameof(options.MaxLineBytes));
        if (options.LabelValues is not null && options.LabelColumn is null)
            throw new ArgumentException($"{nameof(options.LabelValues)} needs a {nameof(options.LabelColumn)}.", nameof(options));
        if (options.LabelValues is { Count: 0 })
            throw new ArgumentException($"{nameof(options.LabelValues)} must name at least one value.", nameof(options));
        (stream, var contentName) = DatasetContent.Open(stream, name, options.MaxDecompressedBytes);
        var format = options.Format;
        if (format == DatasetFormat.Auto && FormatFromExtension(contentName) is { } fromName)
            format = fromName;
        else if (format == DatasetFormat.Auto)
            (format, stream) = DatasetFormatDetection.Detect(stream, name, contentName, options);

        var reader = new Utf8LineReader(stream, name, options.MaxLineBytes);
        var state = new ReadState(name, options);
        format = format == DatasetFormat.Jsonl
            ? ReadJsonLines(reader, state, cancellationToken)
            : ReadDelimited(reader, state, format, cancellationToken);
        return state.Finish(format);
    }

    private static DatasetFormat ReadDelimited(Utf8LineReader reader, ReadState state, DatasetFormat format, CancellationToken cancellationToken)
    {
        var delimiter = format == DatasetFormat.Csv ? ',' : '\t';
        var quoting = format == DatasetFormat.Csv || (format == DatasetFormat.Tsv && state.Options.TsvQuoting);
        var fields = new List<string>();
        var maxBytes = state.Options.MaxLineBytes;

        SourceLine headerLine;
        do
        {
            if (!reader.TryReadLine(out headerLine))
                throw state.Fatal(reader.IsEmpty ? "the file is empty" : "the file has only blank lines: no header");
        }
        while (headerLine.Text is { } blank && string.IsNullOrWhiteSpace(blank));
        if (CarriageReturnsOnly(headerLine))
            throw state.Fatal(CarriageReturnProblem);
        if (headerLine.TooLong)
            throw state.Fatal($"header: line {headerLine.Number} is longer than {maxBytes:N0} bytes");
        if (DelimitedRecord.Parse(headerLine, reader, delimiter, quoting, maxBytes, fields) is { } headerProblem)
            throw state.Fatal($"header: {headerProblem}");
        var columns = fields.Select(f => f.Trim()).ToArray();

        var isPaws = columns.SequenceEqual(s_pawsHeader, StringComparer.OrdinalIgnoreCase);
        if (format == DatasetFormat.Paws && !isPaws)
            throw state.Fatal($"header: expected PAWS's 'id<TAB>sentence1<TAB>sentence2<TAB>label', found columns: {Columns(columns)}");
        if (format == DatasetFormat.Tsv && isPaws)
        {
            format = DatasetFormat.Paws;
            quoting = false;
        }

        var headerProblems = new List<string>();
        foreach (var repeated in columns.GroupBy(c => c, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
            headerProblems.Add($"header: column '{repeated.Key}' appears {repeated.Count()} times");
        var source = Resolve(columns, state.Options.SourceColumn, "source", "sentence1", headerProblems);
        var target = Resolve(columns, state.Options.TargetColumn, "target", "sentence2", headerProblems);
        if (source >= 0 && source == target)
            headerProblems.Add($"header: source and target are the same column ('{columns[source]}')");
        var named = state.Options.LabelColumn;
        var label = Array.FindIndex(columns, c => string.Equals(c, named ?? DefaultLabel, StringComparison.OrdinalIgnoreCase));
        if (named is not null && label < 0)
            headerProblems.Add($"header: no label column named '{Quote(named)}' (columns: {Columns(columns)})");
        else if (label >= 0 && (label == source || label == target))
            headerProblems.Add($"header: the label column '{columns[label]}' is also the {(label == source ? "source" : "target")} column");
        if (headerProblems.Count > 0 && columns.Length == 1 && OtherDelimiter(columns[0], delimiter) is { } other)
            headerProblems.Add($"header: its only column is '{Quote(columns[0])}': are the columns separated by {other}? " +
                $"{(format == DatasetFormat.Csv ? "CSV" : "TSV")} separates them by {DelimiterName(delimiter)}" +
                (other == "';'" ? " (Excel writes ';' in some locales: save the sheet as tab-separated text, or with commas)" : ""));
        if (headerProblems.Count > 0)
            throw new DatasetException(state.Name, headerProblems, headerProblems.Count);
        var quoteHint = format == DatasetFormat.Tsv && !quoting;

        while (reader.TryReadLine(out var line))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (line.Text is { } text && string.IsNullOrWhiteSpace(text))
                continue;
            state.BeginRow();
            if (line.TooLong)
            {
                state.Malformed($"line {line.Number}: longer than {maxBytes:N0} bytes");
                continue;
            }
            if (DelimitedRecord.Parse(line, reader, delimiter, quoting, maxBytes, fields) is { } problem)
            {
                state.Malformed(problem);
                continue;
            }
            if (fields.Count != columns.Length)
            {
                // pandas quotes a TSV field holding a tab or a line break: read without quoting, its row splits.
                var quoted = quoteHint && fields.Any(f => f.StartsWith('"')) ? $"; a field opens with a quote mark: {TsvQuotingHint}" : "";
                state.Malformed($"line {line.Number}: expected {columns.Length} columns, found {fields.Count}{quoted}");
                continue;
            }
            if (quoteHint && QuotedAsPandasWritesIt(fields, source, target) is { } column)
            {
                state.Malformed($"line {line.Number}: '{columns[column]}' is in quotes with doubled quotes inside ({Quote(fields[column])}): {TsvQuotingHint}");
                continue;
            }
            if (label >= 0 && !state.IsParaphrase(line.Number, columns[label], fields[label].Trim()))
                continue;
            state.Add(line.Number, fields[source], columns[source], fields[target], columns[target]);
        }
        return format;
    }

    private const string TsvQuotingHint =
        "if the file quotes its fields as pandas and Python's csv write TSV, read it with TSV quoting (tsvQuoting, --tsv-quoting)";

    /// <summary>
    /// The source or target column whose field is written as pandas writes a TSV field holding a quote mark
    /// (<c>"He said ""hi"""</c>), which read without quoting would train on the quotes; null when neither is.
    /// </summary>
    private static int? QuotedAsPandasWritesIt(List<string> fields, int source, int target)
    {
        foreach (var column in new[] { source, target })
        {
            var field = fields[column];
            if (field.Length < 4 || field[0] != '"' || field[^1] != '"')
                continue;
            var inside = field[1..^1];
            if (inside.Contains("\"\"", StringComparison.Ordinal) && !inside.Replace("\"\"", "", StringComparison.Ordinal).Contains('"'))
                return column;
        }
        return null;
    }

    /// <summary>The delimiter, quoted for a message, that splits a lone header column into names, when it is not <paramref name="delimiter"/>.</summary>
    private static string? OtherDelimiter(string header, char delimiter) =>
        new[] { ';', ',', '\t', '|' }.Where(c => c != delimiter && header.Split(c) is { Length: >= 2 } names && names.All(n => n.Trim().Length > 0))
            .Select(DelimiterName).FirstOrDefault();

    private static string DelimiterName(char delimiter) => delimiter == '\t' ? "tabs" : $"'{delimiter}'";

    private static DatasetFormat ReadJsonLines(Utf8LineReader reader, ReadState state, CancellationToken cancellationToken)
    {
        var options = state.Options;
        var sawLine = false;
        while (reader.TryReadLine(out var line))
        {
            cancellationToken.ThrowIfCancellationRequested();
            sawLine = true;
            if (line.Text is { } text && string.IsNullOrWhiteSpace(text))
                continue;
            state.BeginRow();
            if (line.Text is not { } json)
            {
                state.Malformed($"line {line.Number}: longer than {options.MaxLineBytes:N0} bytes");
                continue;
            }
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(json);
            }
            // JSON takes a CR as whitespace: only a first line that does not parse is read as CR-only line ends.
            catch (JsonException) when (line.Number == 1 && CarriageReturnsOnly(line))
            {
                throw state.Fatal(CarriageReturnProblem);
            }
            catch (JsonException e)
            {
                state.Malformed($"line {line.Number}: not valid JSON (at column {e.BytePositionInLine + 1})");
                continue;
            }
            using (document)
            {
                try
                {
                    var root = document.RootElement;
                    if (root.ValueKind != JsonValueKind.Object)
                    {
                        state.Malformed($"line {line.Number}: expected a JSON object, found {Kind(root.ValueKind)}");
                        continue;
                    }
                    if (Property(root, options.LabelColumn ?? DefaultLabel) is { } labelProperty)
                    {
                        if (!state.IsParaphrase(line.Number, labelProperty.Name, JsonLabel(labelProperty.Value)))
                            continue;
                    }
                    else if (options.LabelColumn is { } missing)
                    {
                        state.Malformed($"line {line.Number}: missing the label '{Quote(missing)}'");
                        continue;
                    }
                    var source = JsonText(root, line.Number, options.SourceColumn, "source", "sentence1", state);
                    var target = JsonText(root, line.Number, options.TargetColumn, "target", "sentence2", state);
                    if (source is null || target is null)
                        continue;
                    state.Add(line.Number, source.Value.Text, source.Value.Name, target.Value.Text, target.Value.Name);
                }
                // JSON may escape half of a surrogate pair (\ud800), which no string can hold: the parser accepts the line,
                // and reading the name or value throws.
                catch (InvalidOperationException)
                {
                    state.Malformed($"line {line.Number}: holds an unpaired UTF-16 surrogate escape (such as \\ud800), which is not text");
                }
            }
        }
        if (state.RowsRead == 0)
            throw state.Fatal(sawLine ? "the file has only blank lines: no JSON objects" : "the file is empty");
        return DatasetFormat.Jsonl;
    }

    /// <summary>The index of the configured column, or of the preferred then the fallback name; -1 with a problem added.</summary>
    private static int Resolve(string[] columns, string? configured, string preferred, string fallback, List<string> problems)
    {
        int Find(string name) => Array.FindIndex(columns, c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));
        var index = configured is not null ? Find(configured) : Find(preferred) is var p and >= 0 ? p : Find(fallback);
        if (index < 0)
        {
            var wanted = configured is not null ? $"'{configured}'" : $"'{preferred}' (or '{fallback}')";
            problems.Add($"header: no column named {wanted} (columns: {Columns(columns)})");
        }
        return index;
    }

    private static (string Name, string Text)? JsonText(JsonElement root, int lineNumber, string? configured, string preferred, string fallback, ReadState state)
    {
        var property = configured is not null ? Property(root, configured) : Property(root, preferred) ?? Property(root, fallback);
        var name = property?.Name ?? configured ?? preferred;
        if (property is not { } found)
        {
            state.Malformed($"line {lineNumber}: missing '{name}'");
            return null;
        }
        if (found.Value.ValueKind != JsonValueKind.String)
        {
            state.Malformed($"line {lineNumber}: '{name}' is {Kind(found.Value.ValueKind)}, expected a string");
            return null;
        }
        return (name, found.Value.GetString()!);
    }

    private const string CarriageReturnProblem =
        "its lines end with a carriage return alone (classic Mac OS), which reads as one line: save it with LF or CRLF line ends";

    // The first line holding a carriage return before its end: lines are split at LF (a CRLF's CR is dropped), so a file
    // of CR-only line ends is one line.
    private static bool CarriageReturnsOnly(SourceLine line) => line.Text is { } text && text.TrimEnd('\r').Contains('\r');

    // The last of repeated names, as Python's json and the HTTP endpoints read them.
    private static JsonProperty? Property(JsonElement element, string name)
    {
        JsonProperty? found = null;
        foreach (var property in element.EnumerateObject())
            if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase))
                found = property;
        return found;
    }

    /// <summary>A label that is a whole number written as a decimal ("1.0", "1e0") as the integer ("1"); any other text as it is.</summary>
    private static string NumericLabel(string value) =>
        value.Length > 0 && (char.IsAsciiDigit(value[0]) || value[0] is '-' or '+' or '.')
        && decimal.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
        && d == decimal.Truncate(d)
            ? decimal.Truncate(d).ToString(System.Globalization.CultureInfo.InvariantCulture)
            : value;

    /// <summary>A JSON label as text: a string's value (trimmed), a number or boolean as written; null for anything else.</summary>
    private static string? JsonLabel(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!.Trim(),
        // 1.0 is 1; other numbers as written.
        JsonValueKind.Number when value.TryGetDecimal(out var d) && d == decimal.Truncate(d) => decimal.Truncate(d).ToString(System.Globalization.CultureInfo.InvariantCulture),
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        _ => null,
    };

    private static string Kind(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static string Columns(string[] columns) => string.Join(", ", columns.Select(Quote));

    /// <summary>A value for a message, cut short: a problem must not carry a megabyte of someone's data.</summary>
    private static string Quote(string value) =>
        value.Length <= MaxQuotedValueChars ? value : string.Concat(value.AsSpan(0, MaxQuotedValueChars), "...");

    /// <summary>The counts and pairs of one read, and its problems: collected for the exception, or skipped and counted.</summary>
    private sealed class ReadState(string name, DatasetReadOptions options)
    {
        private readonly List<ParaphrasePair> _pairs = [];
        private readonly List<string> _problems = [];
        private int _problemCount;

        // The label values that mean a paraphrase, as rows' labels are compared: numbers by value.
        private readonly string[] _paraphraseLabels = [.. options.ParaphraseLabels.Select(v => NumericLabel(v.Trim()))];

        private bool _rowMalformed;

        public string Name => name;
        public DatasetReadOptions Options => options;
        public int RowsRead { get; private set; }
        public int NonParaphrasesSkipped { get; set; }
        private int ParaphraseRows { get; set; }
        private int MalformedRows { get; set; }

        public void BeginRow()
        {
            RowsRead++;
            _rowMalformed = false;
        }

        /// <summary>A problem of the current row; a row with two problems is one malformed row.</summary>
        public void Malformed(string problem)
        {
            if (!_rowMalformed)
                MalformedRows++;
            _rowMalformed = true;
            _problemCount++;
            if (_problems.Count < MaxReportedProblems)
                _problems.Add(problem);
        }

        public void Add(int lineNumber, string source, string sourceName, string target, string targetName)
        {
            var ok = true;
            if (string.IsNullOrWhiteSpace(source))
            {
                Malformed($"line {lineNumber}: empty '{sourceName}'");
                ok = false;
            }
            if (string.IsNullOrWhiteSpace(target))
            {
                Malformed($"line {lineNumber}: empty '{targetName}'");
                ok = false;
            }
            if (!ok)
                return;
            ParaphraseRows++;
            _pairs.Add(new ParaphrasePair(source, target));
            if (options.BothDirections)
                _pairs.Add(new ParaphrasePair(target, source));
        }

        /// <summary>
        /// Whether a row's label (<paramref name="value"/>, null when it is no text, number or boolean) makes it a
        /// paraphrase; a row that is not is counted as skipped, or as malformed when its label is not a label.
        /// </summary>
        public bool IsParaphrase(int lineNumber, string column, string? value)
        {
            // A number as text is its value: pandas writes a label column with a missing value as floats ("1.0").
            value = value is null ? null : NumericLabel(value);
            if (options.LabelColumn is null)
            {
                // PAWS's label: 1 or 0, as text, a number or a boolean (pandas writes "True", JSON true).
                if (value == "1" || string.Equals(value, "true", StringComparison.OrdinalIgnoreCase)) return true;
                if (value == "0" || string.Equals(value, "false", StringComparison.OrdinalIgnoreCase))
                {
                    NonParaphrasesSkipped++;
                    return false;
                }
                Malformed($"line {lineNumber}: label '{Quote(value ?? "(not a value)")}' is not 0 or 1");
                return false;
            }
            if (string.IsNullOrEmpty(value))
            {
                Malformed($"line {lineNumber}: {(value is null ? "no usable" : "empty")} label '{Quote(column)}'");
                return false;
            }
            if (_paraphraseLabels.Any(v => string.Equals(v, value, StringComparison.OrdinalIgnoreCase)))
                return true;
            NonParaphrasesSkipped++;
            return false;
        }

        public DatasetException Fatal(string problem) => new(name, problem);

        private string NotParaphrases => options.LabelColumn is { } column
            ? $"with a '{Quote(column)}' other than {string.Join(" or ", options.ParaphraseLabels.Select(v => $"'{Quote(v)}'"))} (not paraphrases)"
            : "labelled 0 (not paraphrases)";

        public DatasetReadResult Finish(DatasetFormat format)
        {
            if (_problemCount > 0 && !options.Lenient)
                throw new DatasetException(name, _problems, _problemCount);
            if (RowsRead == 0)
                throw Fatal("header only: no data rows");
            if (_pairs.Count == 0)
                throw Fatal($"no paraphrase pairs: {RowsRead} rows read, {NonParaphrasesSkipped} {NotParaphrases}, {MalformedRows} malformed");
            return new DatasetReadResult
            {
                Pairs = _pairs,
                Format = format,
                RowsRead = RowsRead,
                ParaphraseRows = ParaphraseRows,
                NonParaphrasesSkipped = NonParaphrasesSkipped,
                MalformedRowsSkipped = MalformedRows,
                BothDirections = options.BothDirections,
                Problems = _problems,
                LabelColumn = options.LabelColumn,
                LabelValues = options.LabelColumn is null ? null : options.ParaphraseLabels,
            };
        }
    }
}
