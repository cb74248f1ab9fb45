using ParaphraseService.Cli.Benchmarks;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Cli.Tests;

/// <summary>The replay behind `bench speculation`'s ceiling: how many steps each drafter takes on a known output.</summary>
public class SpeculationCeilingTests
{
    // "Original:" 100..119 "Paraphrase:" (1, source, 2, 3), and a paraphrase that copies the source's first 19 tokens
    private static readonly IReadOnlyList<int> Prompt = [1, .. Enumerable.Range(100, 20), 2, 3];
    private static readonly IReadOnlyList<int> Copy = [.. Enumerable.Range(100, 19)];

    [Fact]
    public void WhereExtraPositionsAreFreeEachDrafterTakesTheStepsItsRuleGives()
    {
        // Steps of 1 to 9 positions cost the same, and so does the prompt's pass. Plain decoding: the pass and 18 steps.
        var free = Enumerable.Repeat(1.0, 10).ToArray();

        var report = SpeculationCeiling.Replay([Prompt], [Copy], free, firstToken: 1, new SpeculationOptions());

        // Knowing the accepted length: the pass (its last token appears nowhere before: no draft), then two steps of
        // eight draft tokens, each accepted with the token after it: 19 / 3.
        Assert.Equal(19.0 / 3, report.ExactLength, 9);
        Assert.Equal(19.0 / 3, report.Oracle, 9);
        // The service's drafter starts at three and grows by two after a draft accepted whole: 3 + 1, 5 + 1, 7 + 1
        // tokens after the pass's one: 19 / 4.
        Assert.Equal(19.0 / 4, report.ServiceRule, 9);
    }

    [Fact]
    public void WherePositionsCostAsMuchAsStepsNoDrafterGains()
    {
        // Bound by arithmetic: a step of w positions costs w steps; a draft's accepted tokens then cost what decoding them
        // one at a time would.
        var linear = Enumerable.Range(0, 10).Select(w => (double)w).ToArray();

        var report = SpeculationCeiling.Replay([Prompt], [Copy], linear, firstToken: 1, new SpeculationOptions());

        Assert.Equal(1.0, report.ExactLength, 9);
        Assert.Equal(1.0, report.Oracle, 9);
        Assert.InRange(report.ServiceRule, 0.5, 1.0);
    }
}
