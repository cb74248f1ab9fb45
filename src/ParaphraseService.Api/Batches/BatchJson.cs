using System.Buffers;
using System.Text.Json;

namespace ParaphraseService.Api.Batches;

/// <summary>How batch lines and results are written as JSON: as the HTTP API writes them (web defaults, camelCase).</summary>
internal static class BatchJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static string Error(BatchLineError error) => JsonSerializer.Serialize(error, Options);

    /// <summary>
    /// One line of the results file: <c>{"line", "custom_id", "response"}</c> or <c>{"line", "custom_id", "error"}</c>,
    /// the stored JSON written as it is. A line with neither (cancelled) gets the error <paramref name="unfinished"/>.
    /// </summary>
    public static void WriteResult(IBufferWriter<byte> output, StoredLine line, BatchLineError unfinished)
    {
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteNumber("line", line.Line);
        if (line.CustomId is null)
            writer.WriteNull("custom_id");
        else
            writer.WriteString("custom_id", line.CustomId);
        if (line.State == LineState.Succeeded && line.Result is not null)
        {
            writer.WritePropertyName("response");
            writer.WriteRawValue(line.Result, skipInputValidation: true);
        }
        else if (line.State == LineState.Failed && line.Result is not null)
        {
            writer.WritePropertyName("error");
            writer.WriteRawValue(line.Result, skipInputValidation: true);
        }
        else
        {
            writer.WritePropertyName("error");
            JsonSerializer.Serialize(writer, unfinished, Options);
        }
        writer.WriteEndObject();
        writer.Flush();
        output.Write("\n"u8);
    }
}
