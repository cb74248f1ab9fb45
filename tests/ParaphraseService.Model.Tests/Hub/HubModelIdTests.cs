using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Model.Tests.Hub;

public sealed class HubModelIdTests
{
    [Theory]
    [InlineData("EleutherAI/gpt-j-6b", "EleutherAI/gpt-j-6b", "main")]
    [InlineData("EleutherAI/gpt-j-6b@float16", "EleutherAI/gpt-j-6b", "float16")]
    [InlineData("gpt2", "gpt2", "main")]
    [InlineData("org_1/Model.v2@refs/pr/1", "org_1/Model.v2", "refs/pr/1")]
    [InlineData("a/b@0123456789abcdef0123456789abcdef01234567", "a/b", "0123456789abcdef0123456789abcdef01234567")]
    public void ParsesRepositoryAndRevision(string text, string repo, string revision)
    {
        var id = HubModelId.Parse(text);

        Assert.Equal(repo, id.RepoId);
        Assert.Equal(revision, id.Revision);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("a/b/c")]
    [InlineData("/org/name")]
    [InlineData("org/")]
    [InlineData("../name")]
    [InlineData("org/..")]
    [InlineData("org/na..me")]
    [InlineData("org--x/name")]
    [InlineData("org/name.git")]
    [InlineData("org/-name")]
    [InlineData("org/na me")]
    [InlineData("org\\name")]
    [InlineData("org/name@")]
    [InlineData("org/name@../../etc")]
    [InlineData("org/name@a/../b")]
    [InlineData("org/name@a//b")]
    [InlineData("org/name@/main")]
    [InlineData("org/name@ma in")]
    [InlineData("org/name@main@v2")]
    public void RejectsMalformedIds(string text)
    {
        var error = Assert.Throws<HubException>(() => HubModelId.Parse(text));

        Assert.Equal(HubErrorKind.InvalidModelId, error.Kind);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void NamesTheCacheFolderLikeHuggingFaceHub()
    {
        Assert.Equal("models--EleutherAI--gpt-j-6b", HubModelId.Parse("EleutherAI/gpt-j-6b@float16").CacheFolderName);
        Assert.Equal("models--gpt2", HubModelId.Parse("gpt2").CacheFolderName);
    }

    [Fact]
    public void KnowsWhenTheRevisionIsACommit()
    {
        Assert.True(HubModelId.Parse("a/b@0123456789abcdef0123456789abcdef01234567").RevisionIsCommit);
        Assert.False(HubModelId.Parse("a/b@0123456").RevisionIsCommit);
        Assert.False(HubModelId.Parse("a/b").RevisionIsCommit);
    }

    [Fact]
    public void PrintsTheDefaultRevisionImplicitly()
    {
        Assert.Equal("a/b", HubModelId.Parse("a/b@main").ToString());
        Assert.Equal("a/b@float16", HubModelId.Parse("a/b@float16").ToString());
    }
}
