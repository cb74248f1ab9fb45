using System.Text;
using ParaphraseService.Model.Checkpoints;

namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>Hand-made pickles for what torch.save never writes but a hostile or damaged file might hold.</summary>
public sealed class TorchStateDictUnpicklerTests
{
    [Theory]
    [InlineData("\u0080\u0002cposix\nsystem\nX\u0004\u0000\u0000\u0000trueR.", "'posix.system'")]
    [InlineData("\u0080\u0004\u008c\u0002os\u008c\u0006system\u0093.", "'os.system'")]
    [InlineData("\u0080\u0002ctorch._utils\n_rebuild_tensor_v3\n.", "torch._utils._rebuild_tensor_v3")]
    [InlineData("\u0080\u0002ccollections\nOrderedDict\n)\u0081.", "0x81 (NEWOBJ)")]
    [InlineData("\u0080\u0002(ccollections\nOrderedDict\no.", "0x6f (OBJ)")]
    [InlineData("\u0080\u0002R.", "stack underflow")]
    [InlineData("\u0080\u0002(R.", "stack underflow")]
    [InlineData("\u0080\u0002h\u0005.", "memo entry 5 is used before it is set")]
    [InlineData("\u0080\u0002X\u00ff\u0000\u0000\u0000ab", "runs past the end")]
    [InlineData("\u0080\u0002}", "truncated")]
    [InlineData("\u0080\u0002].", "holds a list, not a state dict")]
    [InlineData("\u0080\u0002}X\u0001\u0000\u0000\u0000aK\u0007s.", "key 'a' holds a int, not a tensor")]
    [InlineData("\u0080\u0002}K\u0001K\u0007s.", "has a int key")]
    [InlineData("\u0080\u0002}(X\u0001\u0000\u0000\u0000au.", "odd number of items")]
    [InlineData("\u0080\u0002ccollections\nOrderedDict\nK\u0001\u0085R.", "OrderedDict called with arguments")]
    [InlineData("\u0080\u0002ctorch\nFloatStorage\n)R.", "which is not callable here")]
    [InlineData("\u0080\u0002(X\u0007\u0000\u0000\u0000storageK\u0001X\u0001\u0000\u0000\u00000X\u0003\u0000\u0000\u0000cpuK\u0002tQ.", "names a int instead of a storage type")]
    [InlineData("\u0080\u0002\u008a\u0009\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u0009.", "does not fit in 64 bits")]
    [InlineData("\u0080\u0009.", "pickle protocol 9")]
    public void RefusesWhatAStateDictNeverHolds(string pickle, string expected)
    {
        var error = Assert.Throws<CheckpointException>(() => TorchStateDictUnpickler.Load(Encoding.Latin1.GetBytes(pickle), "test.bin: archive/data.pkl"));

        Assert.StartsWith("test.bin: archive/data.pkl: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> Floods => new()
    {
        // ']' then a MEMOIZE per byte: 100 MB of these made 8 GB of memo entries.
        { "]" + new string('\u0094', TorchStateDictUnpickler.MaxMemoEntries + 1), "more than 2000000 memo entries" },
        // The same object put under ever new LONG_BINPUT indexes.
        { "]" + string.Concat(Enumerable.Range(0, TorchStateDictUnpickler.MaxMemoEntries + 1).Select(LongBinput)), "more than 2000000 memo entries" },
        // An EMPTY_LIST per byte: 100 MB of these made 5 GB of lists.
        { new string(']', TorchStateDictUnpickler.MaxValues + 1), "more than 2000000 values" },
        // One list, memoized, appended to itself over and over: the stack stays small but the list grows.
        { "]q\u0000" + string.Concat(Enumerable.Repeat("h\u0000a", TorchStateDictUnpickler.MaxValues)), "more than 2000000 values" },
        { new string('(', TorchStateDictUnpickler.MaxOpenMarks + 1), "more than 1000 MARKs are open at once" },
        { "X\u0001\u0000\u0010\u0000" + new string('a', (1 << 20) + 1), "a 1048577-byte string or bytes value is over the 1048576-byte budget" },
        { "c" + new string('a', (1 << 20) + 1) + "\nb\n", "GLOBAL name is over the 1048576-byte budget" },
    };

    [Theory]
    [MemberData(nameof(Floods))]
    public void SmallPicklesThatWouldBuildHugeObjectsAreRefused(string body, string expected)
    {
        var error = Assert.Throws<CheckpointException>(() =>
            TorchStateDictUnpickler.Load(Encoding.Latin1.GetBytes("\u0080\u0004" + body + "."), "flood.bin: archive/data.pkl"));

        Assert.StartsWith("flood.bin: archive/data.pkl: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    private static string LongBinput(int index) => "r" + Encoding.Latin1.GetString(BitConverter.GetBytes(index));

    [Fact]
    public void ReadsAHandMadeStateDictWithNegativeAndLargeIntegers()
    {
        // {'w': _rebuild_tensor_v2(('storage', torch.FloatStorage, 'k', 'cpu', 70000), 2, (3,), (1,), False, OrderedDict())}
        // with the storage size as LONG1 and the offset as BININT, as older torch versions wrote them.
        const string pickle = "\u0080\u0002}X\u0001\u0000\u0000\u0000w" +
            "ctorch._utils\n_rebuild_tensor_v2\n" +
            "((X\u0007\u0000\u0000\u0000storagectorch\nFloatStorage\nX\u0001\u0000\u0000\u0000kX\u0003\u0000\u0000\u0000cpu\u008a\u0003\u0070\u0011\u0001tQ" +
            "J\u0002\u0000\u0000\u0000K\u0003\u0085K\u0001\u0085\u0089ccollections\nOrderedDict\n)RtR" +
            "s.";

        var stateDict = TorchStateDictUnpickler.Load(Encoding.Latin1.GetBytes(pickle), "hand.bin");

        var tensor = Assert.Single(stateDict).Value;
        Assert.Equal(70000, tensor.Storage.ElementCount);
        Assert.Equal("k", tensor.Storage.Key);
        Assert.Equal(2, tensor.StorageOffset);
        Assert.Equal([3L], tensor.Shape);
        Assert.Equal([1L], tensor.Stride);
    }
}
