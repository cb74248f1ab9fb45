using System.Text.RegularExpressions;
using ParaphraseService.Model.Checkpoints.Hub;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Cli.Paraphrasing;

/// <summary>
/// Paraphrases with a model loaded in this process, the way <c>generate</c> loads and runs it, prompted and cut as the
/// service does (the adapter's own template, else the fine-tune prompt; without an adapter the few-shot prompt;
/// candidate i seeded Seed + i; the input's copies
/// and repeated candidates dropped). Candidates are not scored: that needs the service's sentence encoder.
/// </summary>
internal sealed partial class LocalParaphraser : IParaphraseBackend
{
    private readonly LoadedModel _loaded;
    private readonly LoraAdapter? _adapter;
    private readonly PromptTemplate _template;
    private readonly ParaphraseSettings _settings;
    private readonly TextGenerator _generator;

    private LocalParaphraser(LoadedModel loaded, LoraAdapter? adapter, PromptTemplate template, ParaphraseSettings settings, int maxBatch)
    {
        _loaded = loaded;
        _adapter = adapter;
        _template = template;
        _settings = settings;
        _generator = loaded.CreateGenerator(settings.Speculate ? new SpeculationOptions() : null);
        MaxBatch = maxBatch;
    }

    public int MaxBatch { get; }

    /// <summary>The prompt an adapter folder is served with: its metadata's template, else the fine-tune prompt.</summary>
    public static PromptTemplate TemplateOf(string adapterFolder)
    {
        var metadata = Path.Combine(adapterFolder, AdapterMetadata.FileName);
        return PromptTemplate.ForAdapter(File.Exists(metadata) ? AdapterMetadata.Load(metadata).PromptTemplate : null);
    }

    public string Description =>
        (_loaded.Notice is { } notice ? $"{_loaded.Source} ({notice})" : _loaded.Source) + (_adapter is null ? "" : $", adapter {_adapter.Name}");

    /// <summary>Loads <paramref name="model"/> (folder, hub id or demo) and the adapter folder in the settings, if any.</summary>
    public static async Task<LocalParaphraser> LoadAsync(
        string model, ModelLoadOptions options, ParaphraseSettings settings, int maxBatch, IProgress<HubDownloadProgress> downloads,
        Action<string> warn, CancellationToken cancellationToken)
    {
        // The demo model paraphrases with the adapter it ships with unless another is named, as the service does.
        var bundled = settings.Adapter is null && string.Equals(model, DemoModel.SourceName, StringComparison.OrdinalIgnoreCase);
        var loaded = await ModelSource.LoadAsync(model, options with { MaxResidentAdapters = settings.Adapter is null && !bundled ? 0 : 1 }, downloads, cancellationToken);
        try
        {
            LoraAdapter? adapter = null;
            var template = PromptTemplate.Default;
            if ((settings.Adapter ?? (bundled ? loaded.BundledAdapter?.Folder : null)) is { } folder)
            {
                var (loadedAdapter, _, warnings) = loaded.Adapters!.LoadFolder(folder);
                adapter = loadedAdapter;
                foreach (var warning in warnings)
                    warn(warning);
                template = TemplateOf(folder);
            }
            return new LocalParaphraser(loaded, adapter, template, settings, maxBatch);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    public Task<IReadOnlyList<LineOutcome>> ParaphraseAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken) =>
        Task.FromResult(Run(texts, cancellationToken));

    private IReadOnlyList<LineOutcome> Run(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        var outcomes = new LineOutcome?[texts.Count];
        var rows = new List<(int Text, IReadOnlyList<int> Ids, GenerationOptions Options)>();
        var context = _loaded.Config.MaxPositions;
        for (var t = 0; t < texts.Count; t++)
        {
            var ids = _loaded.Tokenizer.Encode(_template.Render(Whitespace().Replace(texts[t], " ").Trim()));
            if (ids.Count + _settings.MaxNewTokens > context)
            {
                outcomes[t] = LineOutcome.Failed(
                    $"The text's prompt is {ids.Count} tokens; with --max-new-tokens {_settings.MaxNewTokens} it exceeds the model's context of {context} tokens.");
                continue;
            }
            var candidates = _settings.Greedy ? 1 : _settings.Candidates;
            for (var i = 0; i < candidates; i++)
                rows.Add((t, ids, Options(i)));
        }

        if (rows.Count > 0)
        {
            try
            {
                var results = _generator.Generate(rows.Select(r => r.Ids).ToList(), rows.Select(r => r.Options).ToList(), cancellationToken,
                    _adapter is null ? null : rows.Select(_ => _adapter).ToList());
                foreach (var group in rows.Select((row, i) => (Index: row.Text, Generated: results[i].Text)).GroupBy(r => r.Index))
                    outcomes[group.Key] = Filter(texts[group.Key], group.Select(g => g.Generated).ToList());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var failed = rows.Select(r => r.Text).Distinct().ToList();
                // One text may be what broke the batch: each alone, so only that one is reported.
                foreach (var t in failed)
                    outcomes[t] = failed.Count > 1 ? Run([texts[t]], cancellationToken)[0] : LineOutcome.Failed(e.Message.ReplaceLineEndings(" "));
            }
        }
        return outcomes.Select(o => o!).ToArray();
    }

    private GenerationOptions Options(int candidate)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = _settings.MaxNewTokens,
            Greedy = _settings.Greedy,
            Temperature = _settings.Greedy ? 1 : _settings.Temperature,
            TopP = _settings.TopP,
            TopK = _settings.TopK,
            RepetitionPenalty = _settings.RepetitionPenalty,
            StopSequences = [_template.EndMarker],
            Seed = _settings.Greedy ? null : _settings.Seed + candidate,
        };
        options.Validate();
        return options;
    }

    /// <summary>Cut, the input's copies and repeats dropped, as the service does (<see cref="CandidateFilter"/>).</summary>
    private LineOutcome Filter(string source, IReadOnlyList<string> raw)
    {
        var (kept, dropped) = CandidateFilter.Apply(source, raw, _template);
        return new LineOutcome(kept.Select(text => new Candidate(text)).ToList(), dropped, null);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    public void Dispose() => _loaded.Dispose();
}
