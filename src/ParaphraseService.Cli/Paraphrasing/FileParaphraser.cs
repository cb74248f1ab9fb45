using System.Text.Encodings.Web;
using System.Text.Json;
using ParaphraseService.Cli.Commands;

namespace ParaphraseService.Cli.Paraphrasing;

/// <summary>What a run did, line by line.</summary>
internal sealed record FileSummary(int Lines, int Paraphrased, int Empty, int Failed);

/// <summary>
/// Reads one text per line, sends the non-blank ones to the backend in batches and writes one JSON object per input
/// line, in input order: <c>{"line", "input", "candidates": [{"text", "similarity", "novelty", "score"}], "dropped",
/// "error"}</c>. A blank line, or a line the backend cannot paraphrase, gets an <c>error</c> and no candidates; the run
/// goes on.
/// </summary>
internal static class FileParaphraser
{
    public const string EmptyLine = "empty line";

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // Text as it is (quotes, non-ASCII) rather than \u escapes; still valid JSON, one object per line.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static async Task<FileSummary> RunAsync(
        TextReader input, TextWriter output, IParaphraseBackend backend, int batchSize, ProgressBar? progress, CancellationToken cancellationToken)
    {
        batchSize = Math.Clamp(batchSize, 1, backend.MaxBatch);
        int lines = 0, paraphrased = 0, empty = 0, failed = 0;
        // Lines read but not yet written: blank ones wait with the batch so the output keeps the input's order.
        var pending = new List<(int Line, string Input)>();

        async Task Flush()
        {
            var texts = pending.Where(p => !string.IsNullOrWhiteSpace(p.Input)).Select(p => p.Input).ToList();
            var outcomes = texts.Count > 0 ? await backend.ParaphraseAsync(texts, cancellationToken) : [];
            var next = 0;
            foreach (var (line, text) in pending)
            {
                LineResult result;
                if (string.IsNullOrWhiteSpace(text))
                {
                    empty++;
                    result = new LineResult(line, text, [], null, EmptyLine);
                }
                else
                {
                    var outcome = outcomes[next++];
                    if (outcome.Error is null) paraphrased++; else failed++;
                    result = new LineResult(line, text, outcome.Candidates, outcome.Dropped, outcome.Error);
                }
                await WriteAsync(output, result);
            }
            await output.FlushAsync(cancellationToken);
            pending.Clear();
            progress?.Report(lines, Detail(empty, failed));
        }

        while (await input.ReadLineAsync(cancellationToken) is { } text)
        {
            pending.Add((++lines, text));
            if (pending.Count(p => !string.IsNullOrWhiteSpace(p.Input)) >= batchSize)
                await Flush();
        }
        if (pending.Count > 0)
            await Flush();
        progress?.Complete(lines, Detail(empty, failed));
        return new FileSummary(lines, paraphrased, empty, failed);
    }

    /// <summary>One line of the output, as every path writes it.</summary>
    public static Task WriteAsync(TextWriter output, LineResult result) => output.WriteAsync(JsonSerializer.Serialize(result, s_json) + "\n");

    internal static string? Detail(int empty, int failed) =>
        empty == 0 && failed == 0 ? null : $"{failed} failed, {empty} empty";
}
