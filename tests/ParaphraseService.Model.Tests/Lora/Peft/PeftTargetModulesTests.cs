using System.Text.RegularExpressions;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Tests.Lora.Peft;

public sealed class PeftTargetModulesTests
{
    [Theory]
    [InlineData("q_proj", "transformer.h.0.attn.q_proj", true)]
    [InlineData("attn.q_proj", "transformer.h.0.attn.q_proj", true)]
    [InlineData("transformer.h.0.attn.q_proj", "transformer.h.0.attn.q_proj", true)]
    [InlineData("h.0.attn.q_proj", "transformer.h.0.attn.q_proj", true)]
    [InlineData("0.attn.q_proj", "transformer.h.10.attn.q_proj", false)]  // a suffix must start at a dot
    [InlineData("proj", "transformer.h.0.attn.q_proj", false)]
    [InlineData("q", "transformer.h.0.attn.q_proj", false)]
    [InlineData("transformer.h.0.attn", "transformer.h.0.attn.q_proj", false)]
    public void NamesMatchTheWholePathOrATailAfterADot(string name, string path, bool expected)
    {
        Assert.Equal(expected, PeftTargetModules.NameMatches(name, path));
        Assert.Equal(expected, PeftTargetModules.FromNames([name]).Matches(path));
    }

    [Theory]
    [InlineData(@".*\.attn\.(q|v)_proj", "transformer.h.1.attn.v_proj", true)]
    [InlineData(@".*\.attn\.(q|v)_proj", "transformer.h.1.attn.k_proj", false)]
    [InlineData(@"q_proj", "transformer.h.0.attn.q_proj", false)]            // re.fullmatch: the whole path
    [InlineData(@"transformer\.h\.0", "transformer.h.0.attn.q_proj", false)]
    [InlineData(@".*q_proj$", "transformer.h.0.attn.q_proj", true)]
    [InlineData(@"transformer\.h\.[01]\.mlp\.fc_in", "transformer.h.1.mlp.fc_in", true)]
    [InlineData(@"transformer\.h\.[01]\.mlp\.fc_in", "transformer.h.11.mlp.fc_in", false)]
    [InlineData(@"a|ab", "ab", true)]                                         // fullmatch tries every alternative
    [InlineData(@"(?!.*fc_out).*\.mlp\..*", "transformer.h.0.mlp.fc_in", true)]  // lookahead: the backtracking engine
    [InlineData(@"(?!.*fc_out).*\.mlp\..*", "transformer.h.0.mlp.fc_out", false)]
    public void APatternMustMatchTheWholePath(string pattern, string path, bool expected)
    {
        Assert.Equal(expected, PeftTargetModules.FromPattern(pattern).Matches(path));
    }

    [Theory]
    [InlineData("all-linear")]
    [InlineData("ALL-LINEAR")]
    [InlineData("All-Linear")]
    public void AllLinearIsRecognisedInAnyCase(string pattern)
    {
        var targets = PeftTargetModules.FromPattern(pattern);
        Assert.True(targets.IsAllLinear);
        Assert.True(targets.Matches("transformer.h.0.attn.q_proj"));
    }

    [Fact]
    public void AListHoldingAllLinearIsJustAName()
    {
        var targets = PeftTargetModules.FromNames(["all-linear"]);
        Assert.False(targets.IsAllLinear);
        Assert.False(targets.Matches("transformer.h.0.attn.q_proj"));
    }

    [Theory]
    [InlineData("(q|v")]
    [InlineData("a)|(b")]   // would close the anchoring group if it were not parsed on its own first
    [InlineData("[z-a]")]
    public void InvalidPatternsAreRefused(string pattern)
    {
        Assert.ThrowsAny<ArgumentException>(() => PeftTargetModules.FromPattern(pattern));
    }

    [Fact]
    public void EqualityComparesTheNames()
    {
        Assert.Equal(PeftTargetModules.FromNames(["q_proj", "v_proj"]), PeftTargetModules.FromNames(["q_proj", "v_proj"]));
        Assert.NotEqual(PeftTargetModules.FromNames(["q_proj"]), PeftTargetModules.FromNames(["v_proj"]));
        Assert.NotEqual(PeftTargetModules.FromNames(["q_proj"]), PeftTargetModules.FromPattern("q_proj"));
        Assert.Equal(PeftTargetModules.FromPattern(".*"), PeftTargetModules.FromPattern(".*"));
    }

    [Fact]
    public void ACatastrophicPatternTimesOutInsteadOfHanging()
    {
        // A backreference forces the backtracking engine; (a+)+ on a long non-matching path then explodes.
        var targets = PeftTargetModules.FromPattern(@"(a+)+\1b");
        Assert.Throws<RegexMatchTimeoutException>(() => targets.Matches(new string('a', 64)));
    }
}
