using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

public class PromptLookupTests
{
    // A "source" 10 11 12 13 14 15 16 17 18 19 20 21, then generation that has copied its start.
    private static readonly int[] Source = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];

    private static List<int> History(params int[] generated) => [.. Source, 99, .. generated];

    [Fact]
    public void ProposesWhatFollowedTheLatestMatchOfTheLongestNgram()
    {
        var lookup = new PromptLookup(new SpeculationOptions { MinDraftTokens = 3 });
        // 12 13 also occurs later as "5 12 13 40 41 42" (latest first): the three-token match 11 12 13 only occurs in the source.
        List<int> history = [.. Source, 5, 12, 13, 40, 41, 42, 99, 11, 12, 13];
        Assert.Equal([14, 15, 16], lookup.Propose(history, 8));
        // with only two tokens to go by, the latest occurrence of 12 13 wins
        Assert.Equal([40, 41, 42], new PromptLookup(new SpeculationOptions { MaxNgram = 2 }).Propose(history, 8));
    }

    [Fact]
    public void NothingMatchesNothingIsProposed() =>
        Assert.Empty(new PromptLookup(new SpeculationOptions()).Propose(History(77), 8));

    [Fact]
    public void ARowIsCopyingAfterADraftAcceptedWholeUntilOneIsNot()
    {
        var lookup = new PromptLookup(new SpeculationOptions());
        Assert.False(lookup.Copying);
        lookup.Verified(4, 4);
        Assert.True(lookup.Copying);
        lookup.Verified(0, 0); // a step without a draft changes nothing
        Assert.True(lookup.Copying);
        lookup.Verified(6, 5);
        Assert.False(lookup.Copying);
    }

    [Fact]
    public void DraftsStartAtTheFewestGrowByTwoOnFullAcceptanceAndShrinkToNoFewer()
    {
        var lookup = new PromptLookup(new SpeculationOptions { MinDraftTokens = 3, MaxDraftTokens = 6 });
        var history = History(10, 11);
        Assert.Equal(3, lookup.Propose(history, 64).Count);
        lookup.Verified(3, 3);
        Assert.Equal(5, lookup.Propose(history, 64).Count);
        lookup.Verified(5, 5);
        Assert.Equal(6, lookup.Propose(history, 64).Count); // the most
        lookup.Verified(6, 2);
        Assert.Equal(5, lookup.Propose(history, 64).Count);
        lookup.Verified(5, 0);
        lookup.Verified(4, 0);
        lookup.Verified(3, 0);
        Assert.Equal(3, lookup.Propose(history, 64).Count); // no fewer than the fewest
        Assert.Equal(2, lookup.Propose(history, 2).Count);  // unless fewer fit
    }

    [Fact]
    public void TheFewestIsCappedByTheMost()
    {
        var lookup = new PromptLookup(new SpeculationOptions { MinDraftTokens = 5, MaxDraftTokens = 2 });
        Assert.Equal([12, 13], lookup.Propose(History(10, 11), 64));
        lookup.Verified(2, 0);
        Assert.Equal(2, lookup.Propose(History(10, 11), 64).Count);
    }

    [Fact]
    public void ADraftEndsWhereTheHistoryEnds() =>
        // 21 last occurred as the source's last token: only 99 and the 21 just generated follow it
        Assert.Equal([99, 21], new PromptLookup(new SpeculationOptions()).Propose(History(21), 8));
}
