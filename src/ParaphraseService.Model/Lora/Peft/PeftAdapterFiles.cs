using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// Reads and writes adapter folders in Hugging Face PEFT's layout: <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c> (or the legacy <c>adapter_model.bin</c>), plus our optional
/// <see cref="AdapterMetadata.FileName"/>. Folders are written with the file names, keys and config fields PEFT's
/// <c>save_pretrained</c> writes (checked against files made as PEFT makes them, not against PEFT itself).
/// </summary>
public static class PeftAdapterFiles
{
    public const string SafetensorsFileName = "adapter_model.safetensors";
    public const string LegacyBinFileName = "adapter_model.bin";

    /// <summary>PEFT configs are a few kilobytes; a JSON file far larger than this is not one (and is not read whole).</summary>
    private const long MaxJsonBytes = 16 << 20;

    private static readonly Dictionary<string, string> s_safetensorsMetadata = new() { ["format"] = "pt" };

    /// <summary>
    /// Loads the adapter in <paramref name="folder"/> and checks it against <paramref name="target"/>: the config's
    /// features, the modules it selects (target_modules, layers_to_transform, exclude_modules) and their ranks
    /// (rank_pattern), and that the weights are lora_A [r, in] and lora_B [out, r] of those modules. A selected module
    /// the file has no weights for is left unadapted with a warning, as PEFT leaves it. Tensors come back as float32 on
    /// the CPU, whatever they were stored as.
    /// </summary>
    /// <param name="name">The adapter's name; the folder's name when null.</param>
    /// <exception cref="AdapterValidationException">Every problem found, naming the folder.</exception>
    public static PeftAdapter Load(string folder, AdapterTarget target, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(target);
        if (!Directory.Exists(folder))
        {
            throw new AdapterValidationException(folder, "adapter folder does not exist");
        }
        name ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));

        var problems = new List<string>();
        var warnings = new List<string>();
        var config = ReadConfig(folder, problems);
        var metadata = ReadMetadata(folder, problems);
        var weightsPath = LocateWeights(folder, problems, warnings);
        if (config is not null)
        {
            config = PeftAdapter.Prepare(config, target, problems, warnings);
        }

        using var source = weightsPath is null ? null : OpenWeights(weightsPath, problems);
        var plan = new SortedDictionary<string, (string A, string B)>(StringComparer.Ordinal);
        var selected = new SortedDictionary<string, SelectedModule>(StringComparer.Ordinal);
        if (config is not null && source is not null)
        {
            (plan, selected) = PeftAdapter.Plan(config, target, source.Tensors, problems, warnings);
        }
        if (problems.Count > 0 || config is null || source is null)
        {
            throw new AdapterValidationException(folder, problems);
        }

        SortedDictionary<string, LoraWeights> modules;
        try
        {
            modules = PeftAdapter.ToFloat32(plan, selected, source.Read, folder);
        }
        catch (CheckpointException e)
        {
            throw new AdapterValidationException(folder, $"{Path.GetFileName(weightsPath)} is corrupt: {WithoutPath(e.Message, weightsPath!)}", e);
        }
        return new PeftAdapter(name, config, modules, selected, metadata, warnings);
    }

    /// <summary>
    /// Writes <paramref name="adapter"/> in PEFT's layout (standard keys, float32, safetensors metadata
    /// {"format": "pt"}) and its metadata file. Atomic: everything is written into a hidden sibling folder that is
    /// then renamed to <paramref name="folder"/>; an existing folder is replaced by a second rename. A failure leaves
    /// no partial folder and any previous one as it was.
    /// </summary>
    public static void Save(string folder, PeftAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(adapter);
        var modules = adapter.Modules; // throws when disposed, before anything is written
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var parent = Path.GetDirectoryName(full) ?? throw new ArgumentException($"Cannot save an adapter as a root folder: {folder}", nameof(folder));
        var leaf = Path.GetFileName(full);
        if (File.Exists(full))
        {
            throw new IOException($"{full}: a file is in the way of the adapter folder");
        }
        Directory.CreateDirectory(parent);

        var temporary = Path.Combine(parent, $".{leaf}.saving-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(temporary);
            adapter.Config.Save(Path.Combine(temporary, PeftLoraConfig.FileName));
            WriteWeights(Path.Combine(temporary, SafetensorsFileName), modules);
            adapter.Metadata?.Save(Path.Combine(temporary, AdapterMetadata.FileName));
            Publish(temporary, full, parent, leaf);
        }
        catch
        {
            DeleteQuietly(temporary);
            throw;
        }
    }

    private static void WriteWeights(string path, IReadOnlyDictionary<string, LoraWeights> modules)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (module, weights) in modules)
        {
            tensors[PeftStateDictKey.Standard(module, isA: true)] = weights.A;
            tensors[PeftStateDictKey.Standard(module, isA: false)] = weights.B;
        }
        SafetensorsWriter.Write(path, tensors, s_safetensorsMetadata);
    }

    private static void Publish(string temporary, string folder, string parent, string leaf)
    {
        if (!Directory.Exists(folder))
        {
            Directory.Move(temporary, folder);
            return;
        }
        // Directories cannot be swapped in one rename: move the old one aside, the new one in, then delete the old.
        var previous = Path.Combine(parent, $".{leaf}.replaced-{Guid.NewGuid():N}");
        Directory.Move(folder, previous);
        try
        {
            Directory.Move(temporary, folder);
        }
        catch
        {
            Directory.Move(previous, folder);
            throw;
        }
        DeleteQuietly(previous);
    }

    private static PeftLoraConfig? ReadConfig(string folder, List<string> problems)
    {
        var path = Path.Combine(folder, PeftLoraConfig.FileName);
        if (!File.Exists(path))
        {
            problems.Add($"{PeftLoraConfig.FileName} is missing: this is not a PEFT adapter folder ({Listing(folder)})");
            return null;
        }
        var configProblems = new List<string>();
        var config = ReadText(path, configProblems) is { } json ? PeftLoraConfig.Parse(json, configProblems) : null;
        problems.AddRange(configProblems.Select(p => $"{PeftLoraConfig.FileName}: {p}"));
        // A config with a mistyped field would be checked with a default in its place: report only the mistake.
        return configProblems.Count == 0 ? config : null;
    }

    private static AdapterMetadata? ReadMetadata(string folder, List<string> problems)
    {
        var path = Path.Combine(folder, AdapterMetadata.FileName);
        if (!File.Exists(path))
        {
            return null;
        }
        var metadataProblems = new List<string>();
        var metadata = ReadText(path, metadataProblems) is { } json ? AdapterMetadata.Parse(json, metadataProblems) : null;
        problems.AddRange(metadataProblems.Select(p => $"{AdapterMetadata.FileName}: {p}"));
        return metadata;
    }

    private static string? LocateWeights(string folder, List<string> problems, List<string> warnings)
    {
        var safetensors = Path.Combine(folder, SafetensorsFileName);
        var bin = Path.Combine(folder, LegacyBinFileName);
        if (File.Exists(safetensors))
        {
            if (File.Exists(bin))
            {
                warnings.Add($"both {SafetensorsFileName} and {LegacyBinFileName} are present; as PEFT does, {SafetensorsFileName} is used");
            }
            return safetensors;
        }
        if (File.Exists(bin))
        {
            return bin;
        }
        problems.Add($"no weights: neither {SafetensorsFileName} nor {LegacyBinFileName} is in the folder ({Listing(folder)})");
        return null;
    }

    private static ICheckpointSource? OpenWeights(string path, List<string> problems)
    {
        // Checked here rather than left to the reader, whose error would be reported as "is corrupt".
        if (RegularFiles.Problem(path) is { } problem)
        {
            problems.Add($"{Path.GetFileName(path)}: {problem}");
            return null;
        }
        try
        {
            return path.EndsWith(".safetensors", StringComparison.Ordinal) ? new SafetensorsReader(path) : new PyTorchCheckpointReader(path);
        }
        catch (CheckpointException e)
        {
            problems.Add($"{Path.GetFileName(path)} is corrupt: {WithoutPath(e.Message, path)}");
            return null;
        }
    }

    private static string? ReadText(string path, List<string> problems)
    {
        // A named pipe would block the read until something writes to it.
        if (RegularFiles.Problem(path) is { } problem)
        {
            problems.Add(problem);
            return null;
        }
        try
        {
            var length = new FileInfo(path).Length;
            if (length > MaxJsonBytes)
            {
                problems.Add($"is {length} bytes, too large for this small JSON file (at most {MaxJsonBytes})");
                return null;
            }
            return File.ReadAllText(path);
        }
        catch (IOException e)
        {
            problems.Add($"cannot be read: {e.Message}");
            return null;
        }
    }

    /// <summary>Checkpoint errors start with the file's path; the adapter error already names the folder and file.</summary>
    private static string WithoutPath(string message, string path) =>
        message.StartsWith(path + ": ", StringComparison.Ordinal) ? message[(path.Length + 2)..] : message;

    private static string Listing(string folder)
    {
        var names = Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        return names.Count == 0 ? "it is empty" : "it holds " + PeftAdapterChecks.List(names!);
    }

    private static void DeleteQuietly(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: a hidden leftover beside the adapter is harmless; the original error matters more.
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
        }
    }
}
