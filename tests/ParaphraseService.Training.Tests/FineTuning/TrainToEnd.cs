using ParaphraseService.Model.Core;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.FineTuning;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.Tests.FineTuning;

/// <summary>Trains an adapter start to finish with a <see cref="LoraTrainingSession"/>, as a test needs it.</summary>
internal static class TrainToEnd
{
    /// <summary>Every step of a session; the adapter is made resident in <paramref name="registry"/> under <paramref name="name"/>.</summary>
    public static LoraAdapter Adapter(CausalLM model, AdapterRegistry registry, PromptTemplate template, string name,
        IReadOnlyList<ParaphrasePair> train, LoraTrainingOptions options, Action<TrainingStep>? progress = null)
    {
        using var session = new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), template, name, train, options);
        while (!session.IsComplete)
        {
            var step = session.RunStep();
            progress?.Invoke(step);
        }
        var adapter = session.TakeAdapter();
        registry.Load(adapter);
        return adapter;
    }
}
