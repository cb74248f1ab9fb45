using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace ParaphraseService.Training.Datasets;

/// <summary>One physical line: its 1-based number and its text without the line end; null text when it was too long.</summary>
internal readonly record struct SourceLine(int Number, string? Text)
{
    public bool TooLong => Text is null;
}

/// <summary>
/// Reads a stream as strict UTF-8 lines (LF or CRLF), with or without a BOM, never holding more than
/// <c>maxLineBytes</c> of one line: the rest of a longer line is read past and dropped, and the line comes back
/// with no text. Bytes that are not UTF-8, and NUL characters, stop the read with a <see cref="DatasetException"/>:
/// the file is binary or in another encoding, and guessing would quietly corrupt or drop text.
/// </summary>
internal sealed class Utf8LineReader(Stream stream, string dataset, int maxLineBytes)
{
    private const int BufferSize = 64 * 1024;
    private static readonly UTF8Encoding s_strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _buffer = new byte[BufferSize];
    private readonly ArrayBufferWriter<byte> _line = new();
    private int _position;
    private int _length;
    private bool _started;
    private int _lineNumber;

    /// <summary>Whether the stream holds nothing but, at most, a BOM (known after the first <see cref="TryReadLine"/>).</summary>
    public bool IsEmpty { get; private set; }

    public bool TryReadLine(out SourceLine line)
    {
        if (!_started)
            Start();
        _line.ResetWrittenCount();
        bool tooLong = false, any = false;
        while (true)
        {
            if (_position == _length && !Fill())
            {
                if (!any)
                {
                    line = default;
                    return false;
                }
                break;
            }
            any = true;
            var available = _buffer.AsSpan(_position, _length - _position);
            var newline = available.IndexOf((byte)'\n');
            var take = newline >= 0 ? newline : available.Length;
            if (!tooLong)
            {
                if (_line.WrittenCount + take > maxLineBytes)
                {
                    tooLong = true;
                    _line.ResetWrittenCount();
                }
                else
                {
                    _line.Write(available[..take]);
                }
            }
            _position += take;
            if (newline >= 0)
            {
                _position++;
                break;
            }
        }

        _lineNumber++;
        if (tooLong)
        {
            line = new SourceLine(_lineNumber, null);
            return true;
        }
        var bytes = _line.WrittenSpan;
        if (bytes.Length > 0 && bytes[^1] == (byte)'\r')
            bytes = bytes[..^1];
        string text;
        try
        {
            text = s_strict.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            var offset = Math.Max(0, e.Index);
            throw NotText($"line {_lineNumber}: byte 0x{(offset < bytes.Length ? bytes[offset] : 0):X2} at column {offset + 1} is not valid UTF-8");
        }
        if (text.Contains('\0', StringComparison.Ordinal))
            throw NotText($"line {_lineNumber}: contains a NUL character");
        line = new SourceLine(_lineNumber, text);
        return true;
    }

    private void Start()
    {
        _started = true;
        Fill();
        var head = _buffer.AsSpan(0, _length);
        if (head.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
            _position = 3;
        else if (head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) || head.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]))
            throw new DatasetException(dataset, "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8");
        IsEmpty = _position == _length;

        // Sniff the first block whole: a binary file often has no line break for longer than a line may be, and
        // should still be called binary rather than a file with a long first line.
        var block = _buffer.AsSpan(_position, _length - _position);
        var isFinal = _length < BufferSize;
        Span<char> scratch = stackalloc char[1024];
        var consumed = 0;
        while (consumed < block.Length)
        {
            var status = Utf8.ToUtf16(block[consumed..], scratch, out var read, out _, replaceInvalidSequences: false, isFinalBlock: isFinal);
            if (status == OperationStatus.InvalidData)
                throw InvalidAt(block, consumed + read);
            consumed += read;
            if (status is OperationStatus.Done or OperationStatus.NeedMoreData)
                break;
        }
        var nul = block.IndexOf((byte)0);
        if (nul >= 0)
            throw NotText($"line {LineOf(block, nul)}: contains a NUL character");
    }

    private DatasetException InvalidAt(ReadOnlySpan<byte> block, int offset) =>
        NotText($"line {LineOf(block, offset)}: byte 0x{block[offset]:X2} is not valid UTF-8");

    private static int LineOf(ReadOnlySpan<byte> block, int offset) => block[..offset].Count((byte)'\n') + 1;

    private DatasetException NotText(string where) =>
        new(dataset, $"not a UTF-8 text file ({where}); is it a binary file? Datasets must be UTF-8 text");

    private bool Fill()
    {
        _position = 0;
        _length = 0;
        while (_length < _buffer.Length)
        {
            var read = stream.Read(_buffer, _length, _buffer.Length - _length);
            if (read == 0)
                break;
            _length += read;
        }
        return _length > 0;
    }
}
