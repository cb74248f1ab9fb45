using System.Text;

namespace ParaphraseService.Training.Datasets;

/// <summary>Splits one delimited record into fields, reading further lines while a quoted field is open (RFC 4180).</summary>
internal static class DelimitedRecord
{
    /// <summary>
    /// Fills <paramref name="fields"/> from the record that starts on <paramref name="first"/>; returns null, or the
    /// problem (with its line number) that made the record unreadable. With <paramref name="quoting"/>, a field that
    /// starts with <c>"</c> runs to the next lone <c>"</c>, <c>""</c> inside it is one quote, and delimiters and line
    /// breaks (read as <c>\n</c>) inside it are text; a quote inside an unquoted field is text.
    /// </summary>
    public static string? Parse(SourceLine first, Utf8LineReader reader, char delimiter, bool quoting, int maxRecordBytes, List<string> fields)
    {
        fields.Clear();
        var text = first.Text!;
        if (!quoting)
        {
            fields.AddRange(text.Split(delimiter));
            return null;
        }

        var lineNumber = first.Number;
        var recordBytes = Encoding.UTF8.GetByteCount(text);
        var field = new StringBuilder();
        var i = 0;
        while (true)
        {
            if (i < text.Length && text[i] == '"')
            {
                i++;
                field.Clear();
                while (true)
                {
                    if (i == text.Length)
                    {
                        if (!reader.TryReadLine(out var next))
                            return $"line {first.Number}: quoted field (column {fields.Count + 1}) not closed before the end of the file";
                        recordBytes += next.TooLong ? maxRecordBytes + 1 : Encoding.UTF8.GetByteCount(next.Text!) + 1;
                        if (recordBytes > maxRecordBytes)
                            return $"line {first.Number}: record longer than {maxRecordBytes:N0} bytes (through line {next.Number}; a quote not closed?)";
                        field.Append('\n');
                        text = next.Text!;
                        lineNumber = next.Number;
                        i = 0;
                        continue;
                    }
                    var c = text[i];
                    if (c == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"')
                        {
                            field.Append('"');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    field.Append(c);
                    i++;
                }
                fields.Add(field.ToString());
                if (i == text.Length)
                    return null;
                if (text[i] != delimiter)
                    return $"line {lineNumber}: unexpected '{text[i]}' after the closing quote of column {fields.Count}";
                i++;
            }
            else
            {
                var end = text.IndexOf(delimiter, i);
                if (end < 0)
                {
                    fields.Add(text[i..]);
                    return null;
                }
                fields.Add(text[i..end]);
                i = end + 1;
            }
        }
    }
}
