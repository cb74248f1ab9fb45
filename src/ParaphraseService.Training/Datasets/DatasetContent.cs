using System.IO.Compression;

namespace ParaphraseService.Training.Datasets;

/// <summary>
/// What a dataset file holds before it is read as text: gzip-compressed content is decompressed (<c>train.jsonl.gz</c>
/// is read as <c>train.jsonl</c>), and files that are not text in a format other tools write (Parquet, Arrow, Excel,
/// archives, other compressions) are refused by name rather than as invalid UTF-8.
/// </summary>
internal static class DatasetContent
{
    private const int HeadBytes = 512;

    // Magic numbers at the start of a file, what they are, and what to do instead.
    private static readonly (byte[] Magic, string What, string Advice)[] s_binaryFormats =
    [
        ("PAR1"u8.ToArray(), "a Parquet file", "export it as JSON Lines or CSV (pandas: read_parquet(...).to_json(path, orient='records', lines=True))"),
        ("ARROW1"u8.ToArray(), "an Arrow file", "export it as JSON Lines or CSV (Hugging Face datasets: Dataset.to_json)"),
        ([0xFF, 0xFF, 0xFF, 0xFF], "an Arrow stream (as Hugging Face datasets caches and save_to_disk write)", "export it with Dataset.to_json or Dataset.to_csv"),
        ([0x50, 0x4B, 0x03, 0x04], "a ZIP archive (an Excel .xlsx workbook is one)", "unzip it, or save the sheet as CSV UTF-8"),
        ([0x50, 0x4B, 0x05, 0x06], "an empty ZIP archive", "send the dataset file itself"),
        ([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1], "an Excel .xls workbook (or another OLE2 document)", "save the sheet as CSV UTF-8"),
        ("BZh"u8.ToArray(), "bzip2-compressed", "decompress it, or compress it with gzip (.gz), which is read as it is"),
        ([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00], "xz-compressed", "decompress it, or compress it with gzip (.gz), which is read as it is"),
        ([0x28, 0xB5, 0x2F, 0xFD], "Zstandard-compressed", "decompress it, or compress it with gzip (.gz), which is read as it is"),
        ([0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C], "a 7-Zip archive", "unpack it and send the dataset file itself"),
        ("SQLite format 3\0"u8.ToArray(), "an SQLite database", "export the table as JSON Lines or CSV"),
    ];

    /// <summary>
    /// The text content of <paramref name="stream"/>, and the name that gives its format (<paramref name="name"/> without a
    /// <c>.gz</c> when the content was gzip-compressed).
    /// </summary>
    /// <param name="maxDecompressedBytes">The most bytes gzip-compressed content may decompress to; null: no limit.</param>
    /// <exception cref="DatasetException">The file is in a binary format (named), or holds a tar archive.</exception>
    public static (Stream Content, string ContentName) Open(Stream stream, string name, long? maxDecompressedBytes)
    {
        var (head, length) = ReadHead(stream);
        var content = (Stream)new HeadThenRest(head, length, stream);
        if (length >= 2 && head[0] == 0x1F && head[1] == 0x8B)
        {
            var compressed = new TailKeeper(content);
            var decompressed = new Gunzipped(new GZipStream(compressed, CompressionMode.Decompress), compressed, name, maxDecompressedBytes);
            (head, length) = ReadHead(decompressed);
            if (IsTar(head.AsSpan(0, length)))
                throw Binary(name, "a gzip-compressed tar archive (.tar.gz)", "unpack it and send one of its files (PAWS: train.tsv, dev.tsv or test.tsv)");
            return (new HeadThenRest(head, length, decompressed), WithoutCompression(name));
        }
        // Some magic numbers are letters ("PAR1", "BZh"): a text file may start with them, a binary one has control bytes too.
        var start = head.AsSpan(0, length);
        if (start.IndexOfAnyInRange((byte)0, (byte)8) >= 0)
            foreach (var (magic, what, advice) in s_binaryFormats)
                if (start.StartsWith(magic))
                    throw Binary(name, what, advice);
        if (IsTar(head.AsSpan(0, length)))
            throw Binary(name, "a tar archive", "unpack it and send one of its files");
        return (content, name);
    }

    /// <summary>The file name without a trailing <c>.gz</c>: the name whose extension says the format.</summary>
    public static string WithoutCompression(string name) =>
        name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? name[..^3] : name;

    private static (byte[] Head, int Length) ReadHead(Stream stream)
    {
        var head = new byte[HeadBytes];
        var length = 0;
        while (length < head.Length && stream.Read(head, length, head.Length - length) is var read and > 0)
            length += read;
        return (head, length);
    }

    // POSIX tar: "ustar" at offset 257 of the first header.
    private static bool IsTar(ReadOnlySpan<byte> head) => head.Length >= 262 && head.Slice(257, 5).SequenceEqual("ustar"u8);

    private static DatasetException Binary(string name, string what, string advice) => new(name,
        $"{what}, not a text file: datasets are UTF-8 text (PAWS TSV, TSV, CSV or JSON Lines, optionally gzip-compressed); {advice}");

    /// <summary>
    /// Decompressed content: a corrupt or truncated gzip file, or content over the limit, is a <see cref="DatasetException"/>.
    /// .NET's GZipStream ends quietly where a truncated file ends, so the content is checked against the file's trailer
    /// (CRC-32 and size of the last member, RFC 1952): a file cut short would read as a shorter dataset.
    /// </summary>
    private sealed class Gunzipped(GZipStream gzip, TailKeeper compressed, string name, long? limit) : Stream
    {
        private long _total;
        private readonly System.IO.Hashing.Crc32 _crc = new();
        private bool _checked;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int read;
            try
            {
                read = gzip.Read(buffer, offset, count);
            }
            catch (InvalidDataException e)
            {
                throw new DatasetException(name, $"not a valid gzip file after {_total:N0} decompressed bytes ({e.Message.TrimEnd('.')})");
            }
            _total += read;
            if (limit is { } max && _total > max)
                throw new DatasetException(name, $"decompressed, the file is more than {max:N0} bytes, the most a dataset may be");
            _crc.Append(buffer.AsSpan(offset, read));
            if (read == 0 && count > 0 && !_checked)
            {
                _checked = true;
                compressed.Drain();
                var tail = compressed.Tail;
                if (tail.Length < 8 || BitConverter.ToUInt32(tail[..4]) != _crc.GetCurrentHashAsUInt32() || BitConverter.ToUInt32(tail[4..]) != unchecked((uint)_total))
                    throw new DatasetException(name, $"the gzip file is truncated or corrupt: its {_total:N0} decompressed bytes do not match the " +
                        "CRC and size its trailer gives (a download or upload cut short? a file of several gzip members is not read: gzip it again as one)");
            }
            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) gzip.Dispose();
            base.Dispose(disposing);
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>A stream read through, keeping its last 8 bytes (a gzip trailer once the stream has ended).</summary>
internal sealed class TailKeeper(Stream inner) : Stream
{
    private readonly byte[] _tail = new byte[8];
    private int _kept;

    /// <summary>The last (up to) 8 bytes read, oldest first.</summary>
    public byte[] Tail => _tail[..Math.Min(_kept, 8)];

    /// <summary>Reads to the end, so that <see cref="Tail"/> is the stream's end.</summary>
    public void Drain()
    {
        var buffer = new byte[8192];
        while (Read(buffer, 0, buffer.Length) > 0) { }
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var read = inner.Read(buffer, offset, count);
        if (read >= 8)
        {
            Array.Copy(buffer, offset + read - 8, _tail, 0, 8);
            _kept = 8;
        }
        else if (read > 0)
        {
            var keep = Math.Min(_kept, 8 - read);
            Array.Copy(_tail, Math.Min(_kept, 8) - keep, _tail, 0, keep);
            Array.Copy(buffer, offset, _tail, keep, read);
            _kept = keep + read;
        }
        return read;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>The bytes already read, then the rest of the stream: the whole content again, even from a stream that cannot seek.</summary>
internal sealed class HeadThenRest(byte[] head, int headLength, Stream rest) : Stream
{
    private int _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_position < headLength)
        {
            var n = Math.Min(count, headLength - _position);
            Array.Copy(head, _position, buffer, offset, n);
            _position += n;
            return n;
        }
        return rest.Read(buffer, offset, count);
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
