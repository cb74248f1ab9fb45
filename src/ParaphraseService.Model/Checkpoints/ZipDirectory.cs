using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// The central directory of a zip file (ZIP64 included, as torch writes for checkpoints over 4 GB), read without
/// loading the archive: torch.save stores every entry uncompressed, so an entry's bytes can be read in place at
/// <see cref="DataOffset"/>. Every length and offset is checked against the file, so a truncated or corrupt
/// archive ends in a <see cref="CheckpointException"/>, never in a crash or an unbounded loop.
/// </summary>
internal sealed class ZipDirectory
{
    private const uint EndOfCentralDirectorySignature = 0x06054b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint LocalHeaderSignature = 0x04034b50;
    private const int EndOfCentralDirectoryLength = 22;
    private const int MaxCommentLength = 0xFFFF;
    // A torch checkpoint has one entry per storage (a few hundred); this bounds the allocation a corrupt length can cause.
    private const long MaxDirectoryBytes = 256L << 20;

    private readonly SafeFileHandle _file;
    private readonly string _path;
    private readonly long _fileLength;
    private readonly long _directoryOffset;
    // Sorted: where each entry's bytes must end at the latest (the next local header).
    private readonly long[] _localHeaderOffsets;

    private ZipDirectory(SafeFileHandle file, string path, long fileLength, long directoryOffset, Dictionary<string, ZipEntry> entries)
    {
        _file = file;
        _path = path;
        _fileLength = fileLength;
        _directoryOffset = directoryOffset;
        Entries = entries;
        _localHeaderOffsets = entries.Values.Select(e => e.LocalHeaderOffset).Order().ToArray();
    }

    public IReadOnlyDictionary<string, ZipEntry> Entries { get; }

    /// <exception cref="CheckpointException">No valid central directory: the file is truncated or not a zip.</exception>
    public static ZipDirectory Read(SafeFileHandle file, string path)
    {
        var fileLength = RandomAccess.GetLength(file);
        var (count, directoryOffset, directoryLength) = FindCentralDirectory(file, path, fileLength);
        if (directoryOffset < 0 || directoryLength < 0 || directoryOffset > fileLength - directoryLength)
        {
            throw Corrupt(path, $"the central directory (offset {directoryOffset}, {directoryLength} bytes) lies outside the {fileLength}-byte file");
        }
        if (directoryLength > MaxDirectoryBytes)
        {
            throw Corrupt(path, $"the central directory claims {directoryLength} bytes, more than {MaxDirectoryBytes}");
        }
        if (count < 0 || count > directoryLength / 46)
        {
            throw Corrupt(path, $"the central directory claims {count} entries in {directoryLength} bytes");
        }
        var directory = new byte[directoryLength];
        ReadExactly(file, path, directory, directoryOffset);

        var entries = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        var position = 0;
        for (long i = 0; i < count; i++)
        {
            var entry = ParseCentralHeader(path, directory, ref position);
            if (!entries.TryAdd(entry.Name, entry))
            {
                throw Corrupt(path, $"entry '{entry.Name}' appears twice");
            }
        }
        return new ZipDirectory(file, path, fileLength, directoryOffset, entries);
    }

    /// <summary>
    /// Where the stored bytes of <paramref name="entry"/> start, checked to lie within the file, to agree with the
    /// entry's local header, and to end before the next entry (or the central directory) begins.
    /// </summary>
    public long DataOffset(ZipEntry entry)
    {
        if (entry.Method != 0)
        {
            throw new CheckpointException($"{_path}: entry '{entry.Name}' is compressed (method {entry.Method}); " +
                "torch.save stores entries uncompressed, so this archive was re-packed: re-save it with torch.save");
        }
        if ((entry.Flags & 1) != 0)
        {
            throw new CheckpointException($"{_path}: entry '{entry.Name}' is encrypted");
        }
        // Readers size a stored entry by one field and bound it by the other: they must be the same number.
        if (entry.Size != entry.CompressedSize)
        {
            throw Corrupt(_path, $"entry '{entry.Name}' is stored uncompressed but the central directory records " +
                $"{entry.CompressedSize} bytes stored and {entry.Size} bytes uncompressed");
        }
        if (entry.LocalHeaderOffset > _fileLength - 30)
        {
            throw Truncated($"entry '{entry.Name}' starts at byte {entry.LocalHeaderOffset}");
        }
        Span<byte> local = stackalloc byte[30];
        ReadExactly(_file, _path, local, entry.LocalHeaderOffset);
        if (BinaryPrimitives.ReadUInt32LittleEndian(local) != LocalHeaderSignature)
        {
            throw Corrupt(_path, $"entry '{entry.Name}' has no local header at byte {entry.LocalHeaderOffset}");
        }
        var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(local[26..]);
        var extraLength = BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
        CheckLocalHeader(entry, local, nameLength);
        var dataOffset = entry.LocalHeaderOffset + 30 + nameLength + extraLength;
        if (entry.CompressedSize > _fileLength - dataOffset)
        {
            throw Truncated($"entry '{entry.Name}' needs bytes {dataOffset} to {dataOffset + entry.CompressedSize}");
        }
        var end = dataOffset + entry.CompressedSize;
        var next = NextBoundary(entry.LocalHeaderOffset);
        if (end > next)
        {
            throw Corrupt(_path, $"entry '{entry.Name}' (bytes {dataOffset} to {end}) runs into the next entry or the central directory at byte {next}");
        }
        return dataOffset;
    }

    // The local header is where the bytes are found; a central directory that names another entry, or other sizes, than
    // the header it points at describes bytes that are not there.
    private void CheckLocalHeader(ZipEntry entry, ReadOnlySpan<byte> local, int nameLength)
    {
        var flags = BinaryPrimitives.ReadUInt16LittleEndian(local[6..]);
        var method = BinaryPrimitives.ReadUInt16LittleEndian(local[8..]);
        long compressedSize = BinaryPrimitives.ReadUInt32LittleEndian(local[18..]);
        long size = BinaryPrimitives.ReadUInt32LittleEndian(local[22..]);
        if (method != entry.Method)
        {
            throw Corrupt(_path, $"entry '{entry.Name}' is method {entry.Method} in the central directory but {method} in its local header");
        }
        var name = new byte[nameLength];
        ReadExactly(_file, _path, name, entry.LocalHeaderOffset + 30);
        var localName = Encoding.UTF8.GetString(name);
        if (localName != entry.Name)
        {
            throw Corrupt(_path, $"the central directory entry '{entry.Name}' points at the local header of '{localName}' (byte {entry.LocalHeaderOffset})");
        }
        // With a data descriptor (flag bit 3, as torch.save writes) the local sizes are 0; 0xFFFFFFFF defers to ZIP64.
        if ((flags & 8) == 0 && compressedSize != 0xFFFFFFFF && size != 0xFFFFFFFF &&
            (compressedSize != entry.CompressedSize || size != entry.Size))
        {
            throw Corrupt(_path, $"entry '{entry.Name}' is {entry.CompressedSize} bytes ({entry.Size} uncompressed) in the central directory " +
                $"but {compressedSize} ({size}) in its local header");
        }
    }

    /// <summary>The first local header or central directory after <paramref name="localHeaderOffset"/>, else the end of the file.</summary>
    private long NextBoundary(long localHeaderOffset)
    {
        var index = Array.BinarySearch(_localHeaderOffsets, localHeaderOffset + 1);
        index = index >= 0 ? index : ~index;
        var next = index < _localHeaderOffsets.Length ? _localHeaderOffsets[index] : _fileLength;
        return _directoryOffset > localHeaderOffset ? Math.Min(next, _directoryOffset) : next;
    }

    /// <summary>The whole of a small entry (data.pkl, byteorder), refusing anything over <paramref name="maxBytes"/>.</summary>
    public byte[] ReadAll(ZipEntry entry, long maxBytes)
    {
        if (entry.Size > maxBytes)
        {
            throw Corrupt(_path, $"entry '{entry.Name}' is {entry.Size} bytes, more than the {maxBytes} expected");
        }
        var offset = DataOffset(entry);
        var bytes = new byte[entry.Size];
        ReadExactly(_file, _path, bytes, offset);
        return bytes;
    }

    private static (long Count, long Offset, long Length) FindCentralDirectory(SafeFileHandle file, string path, long fileLength)
    {
        // The end record sits in the last 22 bytes plus an optional comment of up to 64 KB: scan that tail backwards.
        var tailLength = (int)Math.Min(fileLength, EndOfCentralDirectoryLength + MaxCommentLength);
        var tail = new byte[tailLength];
        ReadExactly(file, path, tail, fileLength - tailLength);
        var end = -1;
        for (var i = tailLength - EndOfCentralDirectoryLength; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndOfCentralDirectorySignature)
            {
                end = i;
                break;
            }
        }
        if (end < 0)
        {
            throw new CheckpointException($"{path}: file is truncated or not a zip archive: " +
                "it has no end-of-central-directory record (a complete torch.save archive always ends with one)");
        }
        var record = tail.AsSpan(end);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(record[10..]);
        long length = BinaryPrimitives.ReadUInt32LittleEndian(record[12..]);
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
        if (count != 0xFFFF && length != 0xFFFFFFFF && offset != 0xFFFFFFFF)
        {
            return (count, offset, length);
        }

        // ZIP64: a 20-byte locator right before the end record points at the 56-byte ZIP64 end record.
        var endPosition = fileLength - tailLength + end;
        if (endPosition < 20)
        {
            throw Corrupt(path, "the end record asks for ZIP64 but there is no room for a ZIP64 locator");
        }
        Span<byte> locator = stackalloc byte[20];
        ReadExactly(file, path, locator, endPosition - 20);
        if (BinaryPrimitives.ReadUInt32LittleEndian(locator) != Zip64LocatorSignature)
        {
            throw Corrupt(path, "the end record asks for ZIP64 but the ZIP64 locator is missing");
        }
        var zip64EndPosition = BinaryPrimitives.ReadInt64LittleEndian(locator[8..]);
        if (zip64EndPosition < 0 || zip64EndPosition > fileLength - 56)
        {
            throw Corrupt(path, $"the ZIP64 end record offset {zip64EndPosition} lies outside the file");
        }
        Span<byte> zip64End = stackalloc byte[56];
        ReadExactly(file, path, zip64End, zip64EndPosition);
        if (BinaryPrimitives.ReadUInt32LittleEndian(zip64End) != Zip64EndSignature)
        {
            throw Corrupt(path, $"no ZIP64 end record at byte {zip64EndPosition}");
        }
        return (BinaryPrimitives.ReadInt64LittleEndian(zip64End[32..]),
            BinaryPrimitives.ReadInt64LittleEndian(zip64End[48..]),
            BinaryPrimitives.ReadInt64LittleEndian(zip64End[40..]));
    }

    private static ZipEntry ParseCentralHeader(string path, byte[] directory, ref int position)
    {
        if (directory.Length - position < 46 || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(position)) != CentralHeaderSignature)
        {
            throw Corrupt(path, $"bad central directory header at directory offset {position}");
        }
        var header = directory.AsSpan(position, 46);
        int flags = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
        int method = BinaryPrimitives.ReadUInt16LittleEndian(header[10..]);
        long compressedSize = BinaryPrimitives.ReadUInt32LittleEndian(header[20..]);
        long size = BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header[28..]);
        int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header[30..]);
        int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
        long localHeaderOffset = BinaryPrimitives.ReadUInt32LittleEndian(header[42..]);
        if (directory.Length - position - 46 < nameLength + extraLength + commentLength)
        {
            throw Corrupt(path, $"central directory header at directory offset {position} runs past the directory");
        }
        var name = Encoding.UTF8.GetString(directory, position + 46, nameLength);
        var extra = directory.AsSpan(position + 46 + nameLength, extraLength);
        position += 46 + nameLength + extraLength + commentLength;

        if (size == 0xFFFFFFFF || compressedSize == 0xFFFFFFFF || localHeaderOffset == 0xFFFFFFFF)
        {
            ApplyZip64Extra(path, name, extra, ref size, ref compressedSize, ref localHeaderOffset);
        }
        if (size < 0 || compressedSize < 0 || localHeaderOffset < 0)
        {
            throw Corrupt(path, $"entry '{name}' has a negative size or offset");
        }
        return new ZipEntry(name, localHeaderOffset, compressedSize, size, method, flags);
    }

    // The ZIP64 extra field (id 1) holds, in this order, only the values whose 32-bit field is 0xFFFFFFFF.
    private static void ApplyZip64Extra(string path, string name, ReadOnlySpan<byte> extra, ref long size, ref long compressedSize, ref long localHeaderOffset)
    {
        while (extra.Length >= 4)
        {
            var id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            var length = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (extra.Length - 4 < length)
            {
                break;
            }
            var field = extra.Slice(4, length);
            if (id == 1)
            {
                if (size == 0xFFFFFFFF)
                {
                    size = TakeInt64(path, name, ref field);
                }
                if (compressedSize == 0xFFFFFFFF)
                {
                    compressedSize = TakeInt64(path, name, ref field);
                }
                if (localHeaderOffset == 0xFFFFFFFF)
                {
                    localHeaderOffset = TakeInt64(path, name, ref field);
                }
                return;
            }
            extra = extra[(4 + length)..];
        }
        throw Corrupt(path, $"entry '{name}' needs a ZIP64 extra field but has none");
    }

    private static long TakeInt64(string path, string name, ref ReadOnlySpan<byte> field)
    {
        if (field.Length < 8)
        {
            throw Corrupt(path, $"entry '{name}' has a short ZIP64 extra field");
        }
        var value = BinaryPrimitives.ReadInt64LittleEndian(field);
        field = field[8..];
        return value;
    }

    private static void ReadExactly(SafeFileHandle file, string path, Span<byte> buffer, long offset)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            int read;
            try
            {
                read = RandomAccess.Read(file, buffer[done..], offset + done);
            }
            catch (IOException e)
            {
                throw new CheckpointException($"{path}: read failed: {e.Message}", e);
            }
            if (read == 0)
            {
                throw new CheckpointException($"{path}: file is truncated: it ends at byte {offset + done}, " +
                    $"inside a record that runs to byte {offset + buffer.Length}");
            }
            done += read;
        }
    }

    private CheckpointException Truncated(string what) =>
        new($"{_path}: file is truncated: {what} but the file is only {_fileLength} bytes");

    private static CheckpointException Corrupt(string path, string problem) => new($"{path}: corrupt zip archive: {problem}");
}
