using System.Text.Json.Serialization;

namespace ParaphraseService.Training.Datasets;

/// <summary>The file formats <see cref="ParaphraseDatasetReader"/> reads.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DatasetFormat>))]
public enum DatasetFormat
{
    /// <summary>
    /// From the file's extension: <c>.tsv</c>/<c>.tab</c> (PAWS when the header is PAWS's), <c>.csv</c>, <c>.jsonl</c> or
    /// <c>.ndjson</c>; for any other name, from the content: a first line that is a JSON object means JSON Lines, a
    /// header of tab-separated names TSV (or PAWS), of comma-separated names CSV. Content that shows none of them is
    /// refused, asking for the format.
    /// </summary>
    Auto,

    /// <summary>
    /// PAWS as Google distributes it: header <c>id&lt;TAB&gt;sentence1&lt;TAB&gt;sentence2&lt;TAB&gt;label</c>, no quoting;
    /// rows labelled 1 are paraphrases, rows labelled 0 are skipped and counted.
    /// </summary>
    Paws,

    /// <summary>Tab-separated with a header naming the columns; no quoting unless <see cref="DatasetReadOptions.TsvQuoting"/>.</summary>
    Tsv,

    /// <summary>Comma-separated with a header naming the columns; RFC 4180 quoting (commas, doubled quotes, line breaks inside quotes).</summary>
    Csv,

    /// <summary>One JSON object per line, <c>{"source": "...", "target": "..."}</c>; blank lines allowed.</summary>
    Jsonl,
}
