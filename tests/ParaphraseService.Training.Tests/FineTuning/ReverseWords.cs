using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.Tests.FineTuning;

/// <summary>A synthetic paraphrase mapping a tiny model can learn in a few steps: three words, then the same words reversed.</summary>
internal static class ReverseWords
{
    private static readonly string[] Words = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "river"];

    public static readonly PromptTemplate Template = new("Source: {text}\nTarget:");

    public static List<ParaphrasePair> Pairs(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var w = Enumerable.Range(0, 3).Select(_ => Words[random.Next(Words.Length)]).ToArray();
            return new ParaphrasePair(string.Join(' ', w), string.Join(' ', w.Reverse()));
        }).ToList();
    }
}
