using ParaphraseService.Api.Adapters;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;

namespace ParaphraseService.Api.FineTuning;

/// <summary>A <see cref="FineTuneRequest"/> checked, and turned into what the trainer and the dataset reader take.</summary>
public static class FineTuneRequests
{
    private const string AllLinear = "all-linear";

    /// <summary>Every problem of the request, by field (camelCase, as sent); empty when it is valid.</summary>
    public static Dictionary<string, string[]> Problems(FineTuneRequest request, FineTuneOptions options)
    {
        var problems = new Dictionary<string, string[]>();
        void Add(string field, string message) => problems[field] = [.. problems.GetValueOrDefault(field) ?? [], message];

        if (AdapterName.Problem(request.Adapter) is { } nameProblem) Add("adapter", nameProblem);
        if (!Enum.TryParse<DatasetFormat>(request.Format, ignoreCase: true, out _))
            Add("format", $"'{request.Format}' is not a dataset format: use auto, paws, tsv, csv or jsonl.");
        if (request.SampleSize is < 1) Add("sampleSize", "must be at least 1.");
        if (request.EvalFraction is < 0 or > 0.5 || double.IsNaN(request.EvalFraction)) Add("evalFraction", "must be between 0 and 0.5.");
        if (request.TargetModules is { Count: 0 }) Add("targetModules", "name at least one module, or all-linear.");
        if (request.TargetModules?.Any(string.IsNullOrWhiteSpace) == true) Add("targetModules", "module names must not be empty.");
        if (request.PromptTemplate is { } template)
        {
            try
            {
                _ = new PromptTemplate(template);
            }
            catch (ArgumentException e)
            {
                Add("promptTemplate", e.Message);
            }
        }
        try
        {
            Settings(request, options).Validate();
        }
        catch (ArgumentException e)
        {
            Add("options", e.Message);
        }
        return problems;
    }

    /// <param name="familyDefault">The model family's default target modules (PEFT's: q_proj, v_proj for GPT-J and
    /// GPT-Neo; c_attn for GPT-2), used when the request names none.</param>
    public static LoraTrainingOptions Training(this FineTuneRequest request, IReadOnlyList<string>? familyDefault = null) => new()
    {
        Rank = request.Rank,
        Alpha = request.Alpha,
        Dropout = request.Dropout,
        TargetModules = request.TargetModules is null ? familyDefault ?? ["q_proj", "v_proj"]
            : request.TargetModules.Any(m => m.Equals(AllLinear, StringComparison.OrdinalIgnoreCase)) ? null : request.TargetModules,
        LearningRate = request.LearningRate,
        Schedule = request.Schedule,
        WarmupSteps = request.WarmupSteps,
        Epochs = request.Epochs,
        MaxSteps = request.MaxSteps,
        BatchSize = request.BatchSize,
        GradientAccumulation = request.GradientAccumulation,
        MaxSequenceLength = request.MaxSequenceLength,
        Seed = request.Seed,
        GradientCheckpointing = request.GradientCheckpointing,
    };

    public static FineTuneSettings Settings(FineTuneRequest request, FineTuneOptions options, IReadOnlyList<string>? familyDefault = null) => new()
    {
        Training = request.Training(familyDefault) with { MaxExamplesPerPass = options.MaxExamplesPerPass },
        EvalEverySteps = request.EvalEverySteps,
        EarlyStoppingPatience = request.EarlyStoppingPatience,
        CheckpointEverySteps = request.CheckpointEverySteps ?? options.CheckpointEverySteps,
        BleuSamples = request.BleuSamples,
    };

    public static DatasetReadOptions ReadOptions(FineTuneRequest request) => new()
    {
        Format = Enum.Parse<DatasetFormat>(request.Format, ignoreCase: true),
        SourceColumn = request.SourceColumn,
        TargetColumn = request.TargetColumn,
        BothDirections = request.BothDirections,
        Lenient = request.Lenient,
    };

    /// <summary>Reads and prepares the job's data (deterministic for the request's seed, so a resumed job gets the same split).</summary>
    /// <exception cref="DatasetException">The file is not a usable dataset; the message names the lines.</exception>
    public static PreparedDataset Prepare(string datasetFile, FineTuneRequest request, Gpt2Tokenizer tokenizer)
    {
        var read = ParaphraseDatasetReader.Read(datasetFile, ReadOptions(request));
        var prepared = DatasetPreparation.Prepare(read, new DatasetPreparationOptions
        {
            SampleSize = request.SampleSize,
            EvalFraction = request.EvalFraction,
            Seed = unchecked((int)request.Seed),
            MaxTokensPerSide = request.MaxSequenceLength / 2,
            TokenCounter = text => tokenizer.Encode(text).Count,
        }, Path.GetFileName(datasetFile));
        if (prepared.Train.Count == 0)
            throw new DatasetException(Path.GetFileName(datasetFile), "no pair is left to train on after dropping copies, duplicates and pairs too long.");
        return prepared;
    }
}
