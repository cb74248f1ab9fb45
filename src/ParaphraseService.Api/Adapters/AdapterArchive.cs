using System.IO.Compression;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// Unpacks an uploaded zip of a PEFT adapter folder into a staging folder, refusing anything unsafe before a byte is
/// written: entries with ".." or absolute paths (zip-slip), more than <see cref="AdaptersOptions.MaxFiles"/> files,
/// declared sizes over <see cref="AdaptersOptions.MaxUnpackedBytes"/> or compression ratios over
/// <see cref="AdaptersOptions.MaxCompressionRatio"/> (zip bombs), files other than <see cref="AdapterStore.FileNames"/>,
/// duplicates, and folders other than one optional top-level folder. Declared sizes can lie, so the bytes actually
/// unpacked are counted too (unpacking stops at the first byte over either limit) and each file's size and CRC-32 must
/// match its header. Files are written under their checked leaf name only, never under a path taken from the zip.
/// </summary>
public static class AdapterArchive
{
    /// <summary>Entries zip tools add that are not part of the folder; skipped.</summary>
    private static bool IsJunk(string[] segments) =>
        segments[0] == "__MACOSX" || segments[^1] == ".DS_Store";

    /// <exception cref="AdapterStoreException">With <see cref="AdapterStoreError.InvalidContent"/>, naming every problem found.</exception>
    public static async Task ExtractAsync(Stream zip, string destination, AdaptersOptions limits, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(zip);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(limits);
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(zip, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw NotAZip(e);
        }

        using (archive)
        {
            List<(ZipArchiveEntry Entry, string Leaf)> plan;
            try
            {
                plan = Plan(archive.Entries, limits);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                throw NotAZip(e);
            }
            long total = 0;
            var buffer = new byte[81920];
            foreach (var (entry, leaf) in plan)
            {
                var path = Path.Combine(destination, leaf);
                try
                {
                    await using var input = entry.Open();
                    await using var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1, useAsync: true);
                    long written = 0;
                    var crc = new System.IO.Hashing.Crc32();
                    int read;
                    while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        written += read;
                        total += read;
                        if (written > entry.Length)
                        {
                            throw Invalid($"'{entry.FullName}' unpacks to more than the {entry.Length} bytes its header declares");
                        }
                        if (total > limits.MaxUnpackedBytes)
                        {
                            throw Invalid($"the zip unpacks to more than {limits.MaxUnpackedBytes} bytes (Adapters:MaxUnpackedBytes)");
                        }
                        crc.Append(buffer.AsSpan(0, read));
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    }
                    // The reader stops at an entry's declared size: a header that understates it yields a truncated
                    // file rather than an error, which only the size and checksum reveal.
                    if (written != entry.Length || crc.GetCurrentHashAsUInt32() != entry.Crc32)
                    {
                        throw Invalid($"'{entry.FullName}' is corrupt: its content does not match the size and CRC-32 its header declares");
                    }
                }
                catch (Exception e) when (e is InvalidDataException or NotSupportedException)
                {
                    throw Invalid($"'{entry.FullName}' cannot be unpacked: {e.Message}");
                }
            }
        }
    }

    private static List<(ZipArchiveEntry Entry, string Leaf)> Plan(IReadOnlyCollection<ZipArchiveEntry> entries, AdaptersOptions limits)
    {
        var unsafePaths = new List<string>();
        var files = new List<(ZipArchiveEntry Entry, string[] Segments)>();
        foreach (var entry in entries)
        {
            var name = entry.FullName.Replace('\\', '/');
            if (IsUnsafe(name))
            {
                unsafePaths.Add(entry.FullName);
                continue;
            }
            if (name.EndsWith('/'))
            {
                continue; // a folder entry; its files are entries of their own
            }
            var segments = name.Split('/');
            if (!IsJunk(segments))
            {
                files.Add((entry, segments));
            }
        }
        if (unsafePaths.Count > 0)
        {
            throw Invalid($"the zip has entries with unsafe paths ('..', absolute or drive paths): {Quote(unsafePaths)}");
        }
        if (files.Count > limits.MaxFiles)
        {
            throw Invalid($"the zip holds {files.Count} files; at most {limits.MaxFiles} are allowed (Adapters:MaxFiles)");
        }
        var declared = files.Sum(f => f.Entry.Length);
        if (declared > limits.MaxUnpackedBytes)
        {
            throw Invalid($"the zip unpacks to {declared} bytes; at most {limits.MaxUnpackedBytes} are allowed (Adapters:MaxUnpackedBytes)");
        }
        var compressed = files
            .Where(f => f.Entry.Length > AdaptersOptions.RatioCheckMinBytes && f.Entry.Length / Math.Max(f.Entry.CompressedLength, 1) > limits.MaxCompressionRatio)
            .Select(f => f.Entry.FullName).ToList();
        if (compressed.Count > 0)
        {
            throw Invalid($"entries compressed more than {limits.MaxCompressionRatio}:1, as no adapter weights are (Adapters:MaxCompressionRatio): {Quote(compressed)}");
        }

        var problems = new List<string>();
        var folders = files.Select(f => f.Segments.Length == 1 ? "" : f.Segments[0]).Distinct(StringComparer.Ordinal).ToList();
        var nested = files.Where(f => f.Segments.Length > 2).Select(f => f.Entry.FullName).ToList();
        if (nested.Count > 0 || folders.Count > 1)
        {
            problems.Add("the adapter files must be at the top of the zip or all inside one folder; found " +
                Quote(files.Select(f => f.Entry.FullName).ToList()));
        }
        var unexpected = files.Where(f => !AdapterStore.FileNames.Contains(f.Segments[^1])).Select(f => f.Entry.FullName).ToList();
        if (unexpected.Count > 0)
        {
            problems.Add($"unexpected files {Quote(unexpected)}; an adapter zip holds only {Quote(AdapterStore.FileNames.Order(StringComparer.Ordinal).ToList())}");
        }
        var duplicates = files.GroupBy(f => f.Segments[^1], StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0)
        {
            problems.Add($"files that appear more than once: {Quote(duplicates)}");
        }
        if (files.Count == 0)
        {
            problems.Add("the zip holds no files");
        }
        if (problems.Count > 0)
        {
            throw new AdapterStoreException(AdapterStoreError.InvalidContent, problems);
        }
        return files.Select(f => (f.Entry, f.Segments[^1])).ToList();
    }

    private static bool IsUnsafe(string name)
    {
        if (name.Length == 0 || name[0] == '/' || name.Contains(':', StringComparison.Ordinal) || name.Any(char.IsControl))
        {
            return true;
        }
        var segments = name.TrimEnd('/').Split('/');
        return segments.Any(s => s is "" or "." or "..");
    }

    private static string Quote(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(20).Select(n => $"'{n}'")) + (names.Count > 20 ? $" and {names.Count - 20} more" : "");

    private static AdapterStoreException NotAZip(Exception e) => Invalid($"the file is not a readable zip archive ({e.Message})");

    private static AdapterStoreException Invalid(string problem) => new(AdapterStoreError.InvalidContent, problem);
}
