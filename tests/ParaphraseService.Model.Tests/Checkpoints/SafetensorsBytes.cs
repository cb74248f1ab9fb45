using System.Buffers.Binary;
using System.Text;

namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>Hand-made safetensors files, for headers the writer would never produce.</summary>
internal static class SafetensorsBytes
{
    public static byte[] Make(string headerJson, int dataBytes) => Make(headerJson, new byte[dataBytes]);

    public static byte[] Make(string headerJson, byte[] data)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }
}
