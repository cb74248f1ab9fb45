using System.Reflection;
using System.Reflection.Emit;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Core;
using Xunit.Abstractions;

namespace ParaphraseService.Model.Tests;

/// <summary>
/// The folder structure of ParaphraseService.Model (README, "Layout"): Core holds what every family shares and depends
/// on no family; the families depend on Core, never on each other; only Families/ModelFamilies lists them all; and no
/// two folders depend on each other, directly or around a loop. A folder depends on another when its code names a
/// type of it, found two ways: the compiled assembly (every type in signatures, fields, locals and method bodies, so a
/// fully qualified name counts as much as a using line) and the source's using lines (which also catch what leaves no
/// trace in IL, such as an inlined constant).
/// </summary>
public sealed partial class ModelLayoutTests(ITestOutputHelper output)
{
    private const string Root = "ParaphraseService.Model";
    private static readonly string[] FamilyFolders = ["GptJ", "GptNeo", "Gpt2"];
    private const string Composition = "Families";

    private static readonly Lazy<Dictionary<(string From, string To), string>> s_edges = new(() =>
    {
        var edges = AssemblyEdges();
        foreach (var (edge, example) in UsingEdges())
            edges.TryAdd(edge, example);
        return edges;
    });

    private static Dictionary<(string From, string To), string> Edges => s_edges.Value;

    [Fact]
    public void CoreDependsOnNoFamily()
    {
        PrintGraph();
        var upward = Edges.Where(e => e.Key.From == "Core" && (FamilyFolders.Contains(e.Key.To) || e.Key.To == Composition)).ToList();
        Assert.True(upward.Count == 0, "Core must not depend on a family or on the family list: " + Describe(upward));
    }

    [Fact]
    public void FamiliesDependOnCoreAndNotOnEachOtherNorOnTheList()
    {
        foreach (var family in FamilyFolders)
            Assert.True(Edges.ContainsKey((family, "Core")), $"{family} does not depend on Core: is the folder still there?");
        var sideways = Edges.Where(e => FamilyFolders.Contains(e.Key.From) && (FamilyFolders.Contains(e.Key.To) || e.Key.To == Composition)).ToList();
        Assert.True(sideways.Count == 0, "A family depends on another family or on the family list: " + Describe(sideways));
    }

    [Fact]
    public void OnlyTheFamilyListNamesEveryFamily()
    {
        // Whoever needs "any family" goes through ModelFamilies; naming all three elsewhere is a second registry.
        var everyFamily = Edges.Keys.GroupBy(e => e.From)
            .Where(g => FamilyFolders.All(f => g.Any(e => e.To == f)))
            .Select(g => g.Key).ToList();
        Assert.Equal(new[] { Composition }, everyFamily);
    }

    [Fact]
    public void NoTwoFoldersDependOnEachOther()
    {
        var cycle = FindCycle(Edges.Keys);
        Assert.True(cycle is null, "Folder dependency cycle: " + (cycle is null ? "" : string.Join(" -> ", cycle)
            + ". References: " + Describe(cycle.Zip(cycle.Skip(1)).Select(e => KeyValuePair.Create(e, Edges[e])))));
    }

    [Fact]
    public void TheCheckFindsACycleAndAnUpwardImport()
    {
        // The checks above pass on an empty graph too: this one shows they see what they are meant to.
        Assert.Equal(new[] { "Core", "GptJ", "Core" }, FindCycle([("Core", "GptJ"), ("GptJ", "Core"), ("GptJ", "Layers")]));
        Assert.Null(FindCycle([("GptJ", "Core"), ("Core", "Layers"), ("GptJ", "Layers")]));
        Assert.Contains(("Core", "Lora"), Edges.Keys); // CausalLMInput's adapters: a reference the reader must see
        Assert.Contains(("Generation", "Core"), Edges.Keys);
        Assert.Contains((Composition, "GptNeo"), Edges.Keys);
        Assert.Contains(("Lora", "Checkpoints"), UsingEdges().Keys); // the source reader too
    }

    private void PrintGraph()
    {
        foreach (var group in Edges.Keys.GroupBy(e => e.From).OrderBy(g => g.Key, StringComparer.Ordinal))
            output.WriteLine($"{group.Key} -> {string.Join(", ", group.Select(e => e.To).Order(StringComparer.Ordinal))}");
    }

    private static string Describe(IEnumerable<KeyValuePair<(string From, string To), string>> edges) =>
        string.Join("; ", edges.Select(e => $"{e.Key.From} -> {e.Key.To} ({e.Value})"));

    /// <summary>A path that comes back to where it started (first node repeated at the end), or null when there is none.</summary>
    private static List<string>? FindCycle(IEnumerable<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).Order(StringComparer.Ordinal).ToList());
        var done = new HashSet<string>();
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            var at = path.IndexOf(node);
            if (at >= 0)
                return [.. path[at..], node];
            if (!done.Add(node))
                return null;
            path.Add(node);
            foreach (var to in next.GetValueOrDefault(node) ?? [])
                if (Visit(to) is { } cycle)
                    return cycle;
            path.RemoveAt(path.Count - 1);
            return null;
        }
        foreach (var node in next.Keys.Order(StringComparer.Ordinal))
            if (Visit(node) is { } cycle)
                return cycle;
        return null;
    }

    /// <summary>The folder of a namespace: "ParaphraseService.Model.Lora.Peft" is Lora; null outside the model.</summary>
    private static string? Folder(string? ns) =>
        ns is not null && ns.StartsWith(Root + ".", StringComparison.Ordinal) ? ns[(Root.Length + 1)..].Split('.')[0] : null;

    // ---- the source's using lines ----

    [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?ParaphraseService\.Model\.(\w+)", RegexOptions.Multiline)]
    private static partial Regex ModelUsing();

    private static Dictionary<(string From, string To), string> UsingEdges()
    {
        var source = Path.GetFullPath(Path.Combine(Fixtures.Get(), "..", "..", "src", Root));
        var edges = new Dictionary<(string, string), string>();
        foreach (var file in Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file).Replace('\\', '/');
            if (relative.StartsWith("bin/", StringComparison.Ordinal) || relative.StartsWith("obj/", StringComparison.Ordinal) || !relative.Contains('/'))
                continue;
            var from = relative.Split('/')[0];
            foreach (Match match in ModelUsing().Matches(File.ReadAllText(file)))
            {
                var to = match.Groups[1].Value;
                if (to != from)
                    edges.TryAdd((from, to), $"{relative}: {match.Value.Trim()}");
            }
        }
        return edges;
    }

    // ---- the compiled assembly ----

    private static Dictionary<(string From, string To), string> AssemblyEdges()
    {
        var edges = new Dictionary<(string, string), string>();
        foreach (var type in typeof(CausalLM).Assembly.GetTypes())
        {
            if (Folder(type.Namespace) is not { } from)
                continue;
            foreach (var (used, where) in Referenced(type))
            {
                if (Folder(used.Namespace) is { } to && to != from)
                    edges.TryAdd((from, to), $"{Name(type)} {where} {Name(used)}");
            }
        }
        return edges;
    }

    private static string Name(Type type) => (type.DeclaringType is { } outer ? Name(outer) + "+" : "") + type.Name;

    private const BindingFlags Declared =
        BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    private static IEnumerable<(Type Type, string Where)> Referenced(Type type)
    {
        IEnumerable<(Type, string)> All(Type? t, string where) => Expand(t).Select(x => (x, where));
        var found = new List<(Type, string)>();
        found.AddRange(All(type.BaseType, "base type uses"));
        foreach (var i in type.GetInterfaces()) found.AddRange(All(i, "implements"));
        foreach (var f in type.GetFields(Declared)) found.AddRange(All(f.FieldType, $"field {f.Name} uses"));
        foreach (var p in type.GetProperties(Declared)) found.AddRange(All(p.PropertyType, $"property {p.Name} uses"));
        foreach (var m in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            if (m is MethodInfo info) found.AddRange(All(info.ReturnType, $"{m.Name} returns"));
            foreach (var p in m.GetParameters()) found.AddRange(All(p.ParameterType, $"{m.Name} takes"));
            var body = m.GetMethodBody();
            if (body is null) continue;
            foreach (var local in body.LocalVariables) found.AddRange(All(local.LocalType, $"{m.Name} holds"));
            foreach (var member in Operands(m, body.GetILAsByteArray() ?? []))
            {
                switch (member)
                {
                    case Type t:
                        found.AddRange(All(t, $"{m.Name} uses"));
                        break;
                    case FieldInfo f:
                        found.AddRange(All(f.DeclaringType, $"{m.Name} reads"));
                        found.AddRange(All(f.FieldType, $"{m.Name} reads"));
                        break;
                    case MethodBase called:
                        found.AddRange(All(called.DeclaringType, $"{m.Name} calls"));
                        if (called is MethodInfo calledInfo)
                        {
                            found.AddRange(All(calledInfo.ReturnType, $"{m.Name} calls"));
                            foreach (var g in calledInfo.IsGenericMethod ? calledInfo.GetGenericArguments() : Type.EmptyTypes) found.AddRange(All(g, $"{m.Name} calls"));
                        }
                        break;
                }
            }
        }
        return found;
    }

    /// <summary>A type and what it is built from: generic arguments, array and by-ref elements.</summary>
    private static IEnumerable<Type> Expand(Type? type)
    {
        if (type is null || type.IsGenericParameter)
            yield break;
        if (type.HasElementType)
        {
            foreach (var t in Expand(type.GetElementType())) yield return t;
            yield break;
        }
        yield return type;
        if (type.IsConstructedGenericType)
            foreach (var t in type.GetGenericArguments().SelectMany(Expand)) yield return t;
    }

    private static readonly Dictionary<short, OpCode> s_opCodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The types, fields and methods a method body's instructions name (call, newobj, ldfld, box, ldtoken, ...).</summary>
    private static IEnumerable<MemberInfo> Operands(MethodBase method, byte[] il)
    {
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (var i = 0; i < il.Length;)
        {
            var code = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var op = s_opCodes[code];
            var size = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
            if (op.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
            {
                MemberInfo? member;
                try
                {
                    member = method.Module.ResolveMember(BitConverter.ToInt32(il, i), typeArgs, methodArgs);
                }
                catch (ArgumentException)
                {
                    member = null; // a token of another generic context; its declaring types are seen elsewhere
                }
                if (member is not null)
                    yield return member;
            }
            i += size;
        }
    }
}
