using System.Buffers.Binary;
using System.Text;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// Reads the <c>data.pkl</c> of a torch.save archive without running Python semantics: it interprets only the pickle
/// opcodes torch.save emits for a state dict (protocols 2 to 5) and resolves only the few globals a state dict needs
/// (<c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c> / <c>_rebuild_parameter</c> and the
/// <c>torch.*Storage</c> classes). Those are never executed: they become descriptions of tensors whose bytes are read
/// later. Any other global or object-constructing opcode is refused, which is what makes a checkpoint from an
/// untrusted source safe to open (a pickle can otherwise call <c>os.system</c>).
/// </summary>
internal sealed class TorchStateDictUnpickler
{
    private static readonly Dictionary<string, ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = ScalarType.Float32,
        ["DoubleStorage"] = ScalarType.Float64,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    private static readonly Dictionary<byte, string> RefusedOpcodes = new()
    {
        [(byte)'i'] = "INST", [(byte)'o'] = "OBJ", [0x81] = "NEWOBJ", [0x92] = "NEWOBJ_EX",
        [0x82] = "EXT1", [0x83] = "EXT2", [0x84] = "EXT4", [(byte)'P'] = "PERSID",
        [(byte)'I'] = "INT", [(byte)'L'] = "LONG", [(byte)'S'] = "STRING", [(byte)'V'] = "UNICODE",
        [(byte)'F'] = "FLOAT", [(byte)'p'] = "PUT", [(byte)'g'] = "GET",
        [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET",
        [0x96] = "BYTEARRAY8", [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
    };

    // Budgets far below what a 256 MB data.pkl could otherwise build (a MEMOIZE per byte made 8 GB of memo, an
    // EMPTY_LIST per byte 5 GB of lists), far above what a state dict needs: about 25 values and memo entries per
    // tensor, a few thousand tensors for GPT-J-6B, MARKs nested a few deep, names of a few hundred characters.
    internal const int MaxValues = 2_000_000;
    internal const int MaxMemoEntries = 2_000_000;
    internal const int MaxOpenMarks = 1_000;
    internal const int MaxStringBytes = 1 << 20;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _data;
    private readonly string _source;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private readonly Dictionary<string, PickledStorage> _storages = new(StringComparer.Ordinal);
    private int _position;
    private int _opcodeOffset;
    private int _values;

    private TorchStateDictUnpickler(byte[] data, string source)
    {
        _data = data;
        _source = source;
    }

    private enum Function
    {
        None,
        OrderedDict,
        RebuildTensorV2,
        RebuildParameter,
        RebuildParameterWithState,
    }

    /// <summary>The state dict in <paramref name="data"/>: tensor descriptions by key, in pickled order.</summary>
    /// <param name="source">File and entry name, for messages.</param>
    /// <exception cref="CheckpointException">Not a plain state dict, a refused global or opcode, or corrupt data.</exception>
    public static OrderedDictionary<string, PickledTensor> Load(byte[] data, string source) =>
        new TorchStateDictUnpickler(data, source).StateDict();

    private OrderedDictionary<string, PickledTensor> StateDict()
    {
        var root = Run();
        if (root is not Dict dict)
        {
            throw Error($"holds a {Describe(root)}, not a state dict (a dict of tensors)");
        }
        var values = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name)
            {
                throw Error($"state dict has a {Describe(key)} key; keys must be strings");
            }
            values[name] = value;
        }
        var tensors = new OrderedDictionary<string, PickledTensor>(StringComparer.Ordinal);
        foreach (var (name, value) in values)
        {
            if (value is not PickledTensor tensor)
            {
                var hint = value is Dict ? " (a training checkpoint? save model.state_dict() on its own)" : "";
                throw Error($"key '{name}' holds a {Describe(value)}, not a tensor{hint}");
            }
            tensors.Add(name, tensor);
        }
        return tensors;
    }

    private object? Run()
    {
        while (true)
        {
            _opcodeOffset = _position;
            var opcode = ReadByte();
            switch (opcode)
            {
                case 0x80: // PROTO
                    var protocol = ReadByte();
                    if (protocol is < 2 or > 5)
                    {
                        throw Error($"pickle protocol {protocol} is not one torch.save writes");
                    }
                    break;
                case 0x95: // FRAME: a length prefix for buffering, nothing to interpret
                    ReadSpan(8);
                    break;
                case (byte)'.': // STOP
                    return Pop();
                case (byte)'(': // MARK
                    if (_marks.Count >= MaxOpenMarks)
                    {
                        throw Error($"more than {MaxOpenMarks} MARKs are open at once; a state dict nests a few deep");
                    }
                    _marks.Push(_stack.Count);
                    break;
                case (byte)'0': // POP
                    Pop();
                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    Push(Peek());
                    break;
                case (byte)'}': // EMPTY_DICT
                    Push(new Dict());
                    break;
                case (byte)']': // EMPTY_LIST
                    Push(new List<object?>());
                    break;
                case (byte)')': // EMPTY_TUPLE
                    Push(Array.Empty<object?>());
                    break;
                case (byte)'t': // TUPLE
                    Push(PopMark());
                    break;
                case 0x85: // TUPLE1
                    Push(new[] { Pop() });
                    break;
                case 0x86: // TUPLE2
                    {
                        var second = Pop();
                        Push(new[] { Pop(), second });
                        break;
                    }
                case 0x87: // TUPLE3
                    {
                        var third = Pop();
                        var second = Pop();
                        Push(new[] { Pop(), second, third });
                        break;
                    }
                case (byte)'l': // LIST
                    Push(PopMark().ToList());
                    break;
                case (byte)'d': // DICT
                    {
                        var dict = new Dict();
                        dict.AddPairs(PopMark(), this);
                        Push(dict);
                        break;
                    }
                case (byte)'a': // APPEND
                    {
                        var value = Pop();
                        AsList(Peek()).Add(value);
                        break;
                    }
                case (byte)'e': // APPENDS
                    {
                        var values = PopMark();
                        AsList(Peek()).AddRange(values);
                        break;
                    }
                case (byte)'s': // SETITEM
                    {
                        var value = Pop();
                        var key = Pop();
                        AsDict(Peek()).Items.Add(new(key, value));
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        var pairs = PopMark();
                        AsDict(Peek()).AddPairs(pairs, this);
                        break;
                    }
                case (byte)'N': // NONE
                    Push(null);
                    break;
                case 0x88: // NEWTRUE
                    Push(true);
                    break;
                case 0x89: // NEWFALSE
                    Push(false);
                    break;
                case (byte)'J': // BININT
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4)));
                    break;
                case (byte)'K': // BININT1
                    Push((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadSpan(2)));
                    break;
                case 0x8a: // LONG1
                    Push(ReadLittleEndianInteger(ReadByte()));
                    break;
                case 0x8b: // LONG4
                    Push(ReadLittleEndianInteger(BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4))));
                    break;
                case (byte)'G': // BINFLOAT (big-endian, unlike everything else)
                    Push(BinaryPrimitives.ReadDoubleBigEndian(ReadSpan(8)));
                    break;
                case (byte)'X': // BINUNICODE
                    Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4)), StrictUtf8));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(ReadString(ReadByte(), StrictUtf8));
                    break;
                case 0x8d: // BINUNICODE8
                    Push(ReadString(BinaryPrimitives.ReadUInt64LittleEndian(ReadSpan(8)), StrictUtf8));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str)
                    Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4)), Encoding.Latin1));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    Push(ReadString(ReadByte(), Encoding.Latin1));
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(ReadSpan(ReadByte()).ToArray());
                    break;
                case (byte)'B': // BINBYTES
                    Push(ReadSpan(StringLength(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4)))).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                    Push(ReadSpan(StringLength(BinaryPrimitives.ReadUInt64LittleEndian(ReadSpan(8)))).ToArray());
                    break;
                case (byte)'q': // BINPUT
                    Memoize(ReadByte());
                    break;
                case (byte)'r': // LONG_BINPUT
                    Memoize(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4)));
                    break;
                case 0x94: // MEMOIZE
                    Memoize(_memo.Count);
                    break;
                case (byte)'h': // BINGET
                    Push(Memo(ReadByte()));
                    break;
                case (byte)'j': // LONG_BINGET
                    Push(Memo(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4))));
                    break;
                case (byte)'c': // GLOBAL
                    {
                        var module = ReadLine();
                        var name = ReadLine();
                        Push(Resolve(module, name));
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        var name = Pop();
                        var module = Pop();
                        if (module is not string moduleName || name is not string globalName)
                        {
                            throw Error("STACK_GLOBAL without a module and name string");
                        }
                        Push(Resolve(moduleName, globalName));
                        break;
                    }
                case (byte)'R': // REDUCE
                    {
                        var arguments = Pop();
                        var callable = Pop();
                        Push(Call(callable, arguments));
                        break;
                    }
                case (byte)'b': // BUILD
                    {
                        var state = Pop();
                        // OrderedDict.__reduce__ restores instance attributes (a module's state_dict()._metadata)
                        // through BUILD; they carry no tensors, so they are dropped.
                        if (Peek() is not Dict)
                        {
                            throw Error($"BUILD on a {Describe(Peek())}, which torch.save never emits for a state dict");
                        }
                        if (state is not (Dict or null))
                        {
                            throw Error($"BUILD with a {Describe(state)} state");
                        }
                        break;
                    }
                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;
                default:
                    var opcodeName = RefusedOpcodes.TryGetValue(opcode, out var known) ? known : "unknown";
                    throw Error($"pickle opcode 0x{opcode:x2} ({opcodeName}) is not part of a torch.save state dict; refusing it");
            }
        }
    }

    private Global Resolve(string module, string name)
    {
        var qualified = $"{module}.{name}";
        switch (qualified)
        {
            case "collections.OrderedDict":
                return new Global(qualified, Function.OrderedDict, null);
            case "torch._utils._rebuild_tensor_v2":
                return new Global(qualified, Function.RebuildTensorV2, null);
            case "torch._utils._rebuild_parameter":
                return new Global(qualified, Function.RebuildParameter, null);
            case "torch._utils._rebuild_parameter_with_state":
                return new Global(qualified, Function.RebuildParameterWithState, null);
            case "torch._utils._rebuild_tensor_v3":
                throw Error($"uses {qualified}, which torch writes for dtypes without a storage class " +
                    "(uint16/32/64, float8): not supported; convert the tensors to a supported dtype");
        }
        if (module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal))
        {
            if (StorageTypes.TryGetValue(name, out var dtype))
            {
                return new Global(qualified, Function.None, dtype);
            }
            throw Error($"storage type {qualified} is not supported (supported: {string.Join(", ", StorageTypes.Keys.Select(k => "torch." + k))})");
        }
        throw Error($"refers to the Python global '{qualified}', which a tensor state dict does not need; refusing to load it " +
            "(allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.*Storage)");
    }

    private object Call(object? callable, object? arguments)
    {
        if (callable is not Global { Function: not Function.None } function)
        {
            throw Error($"REDUCE calls a {Describe(callable)}, which is not callable here");
        }
        if (arguments is not object?[] args)
        {
            throw Error($"REDUCE passes a {Describe(arguments)} to {function.Name} instead of an argument tuple");
        }
        switch (function.Function)
        {
            case Function.OrderedDict:
                // torch.save pickles OrderedDict() empty and fills it with SETITEMS.
                return args.Length == 0 ? new Dict() : throw Error("OrderedDict called with arguments");
            case Function.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.Length is not (6 or 7) || args[0] is not PickledStorage storage)
                {
                    throw Error($"{function.Name} called with unexpected arguments");
                }
                return new PickledTensor(storage, AsLong(args[1], "storage_offset"), AsLongs(args[2], "size"), AsLongs(args[3], "stride"));
            case Function.RebuildParameter:
            case Function.RebuildParameterWithState:
                // (data, requires_grad, backward_hooks[, state]): a Parameter is its data tensor here.
                var expected = function.Function == Function.RebuildParameter ? 3 : 4;
                if (args.Length != expected || args[0] is not PickledTensor data)
                {
                    throw Error($"{function.Name} called with unexpected arguments");
                }
                return data;
            default:
                throw Error($"REDUCE calls {function.Name}, which is not callable here");
        }
    }

    // torch.save's persistent id for a storage: ('storage', storage_type, key, location, numel).
    private PickledStorage PersistentLoad(object? id)
    {
        if (id is not object?[] { Length: 5 } fields || fields[0] is not "storage")
        {
            throw Error($"persistent id {Describe(id)} is not a torch storage reference");
        }
        if (fields[1] is not Global { StorageType: { } dtype })
        {
            throw Error($"storage reference names a {Describe(fields[1])} instead of a storage type");
        }
        if (fields[2] is not string key || fields[3] is not string)
        {
            throw Error("storage reference without a key and location string");
        }
        var count = AsLong(fields[4], "storage size");
        if (count < 0)
        {
            throw Error($"storage '{key}' has negative size {count}");
        }
        if (_storages.TryGetValue(key, out var existing))
        {
            return existing.DType == dtype && existing.ElementCount == count
                ? existing
                : throw Error($"storage '{key}' is referenced with two different types or sizes");
        }
        var storage = new PickledStorage(key, dtype, count);
        _storages.Add(key, storage);
        return storage;
    }

    private long AsLong(object? value, string what) =>
        value is long number ? number : throw Error($"{what} is a {Describe(value)}, not an int");

    private long[] AsLongs(object? value, string what)
    {
        if (value is not object?[] items)
        {
            throw Error($"{what} is a {Describe(value)}, not a tuple");
        }
        var numbers = new long[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            numbers[i] = AsLong(items[i], what);
        }
        return numbers;
    }

    private long ReadLittleEndianInteger(int length)
    {
        if (length is < 0 or > 8)
        {
            throw Error($"integer of {length} bytes does not fit in 64 bits");
        }
        var bytes = ReadSpan(length);
        if (length == 0)
        {
            return 0;
        }
        // Two's complement: sign-extend from the top byte that is there.
        long value = (sbyte)bytes[length - 1];
        for (var i = length - 2; i >= 0; i--)
        {
            value = (value << 8) | bytes[i];
        }
        return value;
    }

    private string ReadString(ulong length, Encoding encoding)
    {
        var bytes = ReadSpan(StringLength(length));
        try
        {
            return encoding.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error("string is not valid UTF-8");
        }
    }

    private string ReadLine()
    {
        var rest = _data.AsSpan(_position);
        var end = rest.IndexOf((byte)'\n');
        if (end < 0)
        {
            throw Error("data ends inside a GLOBAL name");
        }
        if (end > MaxStringBytes)
        {
            throw Error($"a {end}-byte GLOBAL name is over the {MaxStringBytes}-byte budget");
        }
        _position += end + 1;
        return Encoding.UTF8.GetString(rest[..end]);
    }

    private int Length(ulong length) =>
        length <= (ulong)(_data.Length - _position) ? (int)length : throw Error($"a {length}-byte value runs past the end of the data");

    private int StringLength(ulong length) => length <= MaxStringBytes
        ? Length(length)
        : throw Error($"a {length}-byte string or bytes value is over the {MaxStringBytes}-byte budget; a state dict holds only short names");

    private void Memoize(long index)
    {
        if (_memo.Count >= MaxMemoEntries && !_memo.ContainsKey(index))
        {
            throw Error($"more than {MaxMemoEntries} memo entries, over the budget for a state dict (about 25 per tensor)");
        }
        _memo[index] = Peek();
    }

    private byte ReadByte() => ReadSpan(1)[0];

    private ReadOnlySpan<byte> ReadSpan(int length)
    {
        if (length > _data.Length - _position)
        {
            throw Error("data ends in the middle of an opcode (truncated)");
        }
        var span = _data.AsSpan(_position, length);
        _position += length;
        return span;
    }

    private object? Memo(long index) =>
        _memo.TryGetValue(index, out var value) ? value : throw Error($"memo entry {index} is used before it is set");

    private void Push(object? value)
    {
        // Every value the pickle builds passes through here, so this also bounds the lists and dicts they fill.
        if (++_values > MaxValues)
        {
            throw Error($"more than {MaxValues} values, over the budget for a state dict (about 25 per tensor)");
        }
        _stack.Add(value);
    }

    private object? Peek() => _stack.Count > (_marks.Count > 0 ? _marks.Peek() : 0)
        ? _stack[^1]
        : throw Error("stack underflow");

    private object? Pop()
    {
        var value = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object?[] PopMark()
    {
        if (!_marks.TryPop(out var mark))
        {
            throw Error("no MARK to pop to");
        }
        var items = _stack.GetRange(mark, _stack.Count - mark).ToArray();
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private List<object?> AsList(object? value) =>
        value as List<object?> ?? throw Error($"APPEND to a {Describe(value)}, not a list");

    private Dict AsDict(object? value) =>
        value as Dict ?? throw Error($"SETITEM on a {Describe(value)}, not a dict");

    private static string Describe(object? value) => value switch
    {
        null => "None",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        object?[] => "tuple",
        List<object?> => "list",
        Dict => "dict",
        PickledTensor => "tensor",
        PickledStorage => "storage",
        Global global => global.Name,
        _ => value.GetType().Name,
    };

    private CheckpointException Error(string problem) => new($"{_source}: {problem} (pickle byte {_opcodeOffset})");

    /// <summary>A resolved global: a function we interpret, or a storage class standing for a dtype.</summary>
    private sealed record Global(string Name, Function Function, ScalarType? StorageType);

    /// <summary>A pickled dict or OrderedDict; pairs keep their order, and a repeated key keeps its last value.</summary>
    private sealed class Dict
    {
        public List<KeyValuePair<object?, object?>> Items { get; } = [];

        public void AddPairs(object?[] flat, TorchStateDictUnpickler owner)
        {
            if (flat.Length % 2 != 0)
            {
                throw owner.Error("SETITEMS with an odd number of items");
            }
            for (var i = 0; i < flat.Length; i += 2)
            {
                Items.Add(new(flat[i], flat[i + 1]));
            }
        }
    }
}
