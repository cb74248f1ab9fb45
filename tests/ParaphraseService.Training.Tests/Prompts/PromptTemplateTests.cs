using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.Tests.Prompts;

public class PromptTemplateTests
{
    [Fact]
    public void TheDefaultFewShotPromptEndsWithTheInputAndLeavesNoPlaceholder()
    {
        var prompt = PromptTemplate.Default.Render("  The train was late again this morning.\n");

        Assert.DoesNotContain(PromptTemplate.Placeholder, prompt);
        Assert.EndsWith("Original: The train was late again this morning.\nParaphrase:", prompt);
        // Four worked examples before the input, each one line, separated by blank lines.
        Assert.Equal(5, prompt.Split("Original: ").Length - 1);
        Assert.Equal(5, prompt.Split("\nParaphrase:").Length - 1);
        Assert.Equal(4, prompt.Split("\n\n").Length - 1);
        Assert.Equal("\n", PromptTemplate.Default.EndMarker);
    }

    [Fact]
    public void RenderReplacesOnlyTheTemplatesPlaceholder()
    {
        var template = new PromptTemplate("Rewrite: {text} =>", "###");
        Assert.Equal("Rewrite: say {text} twice =>", template.Render("say {text} twice"));
    }

    [Theory]
    [InlineData("\n", " A fast fox.\nOriginal: next example\n", "A fast fox.")]
    [InlineData("\n", " One.\nTwo.\nThree.", "One.")]
    [InlineData("</s>", " A fast fox.</s> trailing text", "A fast fox.")]
    [InlineData("###", "A fast fox.\nOn two lines.### more ### and more", "A fast fox.\nOn two lines.")]
    public void CutKeepsTheTextBeforeTheFirstEndMarker(string marker, string generated, string expected) =>
        Assert.Equal(expected, new PromptTemplate("{text}", marker).Cut(generated));

    [Fact]
    public void CutWithoutAMarkerKeepsEverythingTrimmed() =>
        Assert.Equal("A fast fox leaps.", PromptTemplate.Default.Cut("  A fast fox leaps.  "));

    [Theory]
    [InlineData("\n", "\nA fast fox.")]
    [InlineData("\n", "   \nA fast fox.")]
    [InlineData("###", "###A fast fox.")]
    [InlineData("\n", "")]
    [InlineData("\n", "   ")]
    public void CutIsNullWhenNothingPrecedesTheMarker(string marker, string generated) =>
        Assert.Null(new PromptTemplate("{text}", marker).Cut(generated));

    [Theory]
    [InlineData("Paraphrase this:", "0 times")]
    [InlineData("{Text} uses the wrong case", "0 times")]
    [InlineData("{text} and again {text}", "2 times")]
    public void ATemplateMustHoldThePlaceholderExactlyOnce(string template, string count)
    {
        var error = Assert.Throws<ArgumentException>(() => PromptTemplate.ForAdapter(template));
        Assert.Equal("template", error.ParamName);
        Assert.Contains("{text} exactly once", error.Message);
        Assert.Contains(count, error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  \n ")]
    public void AnEmptyTemplateIsRefused(string template)
    {
        var error = Assert.Throws<ArgumentException>(() => new PromptTemplate(template));
        Assert.Contains("must not be empty", error.Message);
    }

    [Fact]
    public void AnEmptyEndMarkerIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => new PromptTemplate("{text}", ""));
        Assert.Equal("endMarker", error.ParamName);
    }

    [Fact]
    public void AnAdapterWithoutATemplateIsServedWithTheFineTunePromptAndOneWithATemplateKeepsItsMarker()
    {
        // Asked as it was taught: a fine-tune without a template trains with FineTuneDefault and stores it.
        Assert.Same(PromptTemplate.FineTuneDefault, PromptTemplate.ForAdapter(null));
        Assert.Equal("Original: Hello there.\nParaphrase:", PromptTemplate.ForAdapter(null).Render("Hello there."));
        Assert.Equal("###", PromptTemplate.ForAdapter(null, "###").EndMarker);
        Assert.Equal(PromptTemplate.FineTuneTemplateText, PromptTemplate.ForAdapter(null, "###").Template);

        var adapter = PromptTemplate.ForAdapter("### Input: {text}\n### Paraphrase:", "###");
        Assert.Equal("### Input: Hello there.\n### Paraphrase:", adapter.Render("Hello there."));
        Assert.Equal("Hi there.", adapter.Cut(" Hi there.\n### Input: next"));
        Assert.Equal("\n", PromptTemplate.ForAdapter("{text}").EndMarker);
    }

    [Fact]
    public void TheFewShotPromptIsForTheBaseModelAloneNeverForAnAdapter()
    {
        Assert.Same(PromptTemplate.Default, PromptTemplate.ForModel(withAdapter: false, adapterTemplate: null));
        Assert.Same(PromptTemplate.FineTuneDefault, PromptTemplate.ForModel(withAdapter: true, adapterTemplate: null));
        Assert.Equal("Q: {text}\nA:", PromptTemplate.ForModel(withAdapter: true, adapterTemplate: "Q: {text}\nA:").Template);
        Assert.NotEqual(PromptTemplate.Default.Template, PromptTemplate.FineTuneDefault.Template);
        Assert.Throws<ArgumentException>(() => PromptTemplate.ForModel(withAdapter: true, adapterTemplate: "no placeholder"));
    }
}
