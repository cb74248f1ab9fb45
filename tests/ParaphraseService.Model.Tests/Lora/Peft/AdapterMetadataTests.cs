using System.Text.Json;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;

namespace ParaphraseService.Model.Tests.Lora.Peft;

public sealed class AdapterMetadataTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void ReadsTheFixturesFileAndKeepsUnknownFields()
    {
        var metadata = AdapterMetadata.Load(Path.Combine(PeftFixtures.Folder("all-linear-rslora"), AdapterMetadata.FileName));

        Assert.Equal(AdapterOrigin.FineTune, metadata.Origin);
        Assert.Equal(new DateTimeOffset(2026, 11, 30, 12, 34, 56, TimeSpan.Zero), metadata.Created);
        Assert.Equal("Paraphrase: {text}\nParaphrase:", metadata.PromptTemplate);
        Assert.Equal("paws", metadata.Training!.Value.GetProperty("dataset").GetString());
        Assert.Equal(new Dictionary<string, double> { ["eval_loss"] = 1.25, ["train_steps"] = 400 }, metadata.Metrics);
        Assert.Equal("a future version", metadata.OtherFields["written_by"].GetString());
    }

    [Fact]
    public void RoundTripsEveryField()
    {
        var metadata = new AdapterMetadata
        {
            Origin = AdapterOrigin.Upload,
            Created = new DateTimeOffset(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero),
            PromptTemplate = "Rewrite \"{text}\" <politely> ü",
            Training = JsonSerializer.SerializeToElement(new { epochs = 3, notes = new[] { "a", "b" } }),
            Metrics = new Dictionary<string, double> { ["bleu"] = 31.5, ["eval_loss"] = 0.875 },
            OtherFields = new Dictionary<string, JsonElement> { ["extra"] = JsonSerializer.SerializeToElement(new { x = 1 }) },
        };
        var path = _temp.File(AdapterMetadata.FileName);

        metadata.Save(path);
        var read = AdapterMetadata.Load(path);

        Assert.Equal(metadata, read);
        var text = File.ReadAllText(path);
        Assert.Contains("\"origin\": \"upload\"", text);
        Assert.Contains("\"created\": \"2026-01-02T03:04:05.678Z\"", text);
        Assert.Contains("Rewrite \\\"{text}\\\" <politely> ü", text);
    }

    [Fact]
    public void CreatedIsStoredAsUtc()
    {
        var local = new DateTimeOffset(2026, 6, 1, 14, 0, 0, TimeSpan.FromHours(2));
        var metadata = new AdapterMetadata { Origin = AdapterOrigin.FineTune, Created = local };

        Assert.Contains("\"created\": \"2026-06-01T12:00:00Z\"", metadata.ToJson());
        var read = AdapterMetadata.FromJson("""{"origin": "upload", "created": "2026-06-01T14:00:00+02:00"}""", "offset");
        Assert.Equal(TimeSpan.Zero, read.Created.Offset);
        Assert.Equal(local, read.Created);
        Assert.Null(read.PromptTemplate);
        Assert.Null(read.Training);
        Assert.Empty(read.Metrics);
    }

    [Fact]
    public void EveryProblemIsReportedAtOnce()
    {
        var json = """{"origin": "download", "created": "2026-06-01T14:00:00", "metrics": {"loss": "low"}, "training": [1]}""";
        var error = Assert.Throws<AdapterValidationException>(() => AdapterMetadata.FromJson(json, "meta.json"));
        Assert.Equal(4, error.Problems.Count);
        Assert.Contains("origin is 'download', not \"upload\" or \"fine-tune\"", error.Message);
        Assert.Contains("created must be an ISO 8601 time with a zone", error.Message);  // no zone: ambiguous
        Assert.Contains("metric 'loss' must be a number, not \"low\"", error.Message);
        Assert.Contains("training must be an object, not [1]", error.Message);
    }

    [Theory]
    [InlineData("Paraphrase:", 0)]
    [InlineData("{text} and {text}", 2)]
    [InlineData("   ", 0)]
    public void APromptTemplateWithoutThePlaceholderOnceIsRefusedNamingTheFile(string template, int count)
    {
        var json = $$"""{"origin": "upload", "created": "2026-06-01T12:00:00Z", "prompt_template": {{System.Text.Json.JsonSerializer.Serialize(template)}}}""";
        var error = Assert.Throws<AdapterValidationException>(() => AdapterMetadata.FromJson(json, "paraphrase_adapter.json"));
        Assert.StartsWith("paraphrase_adapter.json: ", error.Message, StringComparison.Ordinal);
        Assert.Contains($"prompt_template must contain the placeholder {{text}} exactly once (it is where the text to paraphrase goes); it contains it {count} times", error.Message);
        // one placeholder, anywhere, is a template
        Assert.Equal("Rewrite: {text}\nAs:", AdapterMetadata.FromJson("""{"origin": "upload", "created": "2026-06-01T12:00:00Z", "prompt_template": "Rewrite: {text}\nAs:"}""", "ok.json").PromptTemplate);
    }

    [Fact]
    public void OriginAndCreatedAreRequired()
    {
        var error = Assert.Throws<AdapterValidationException>(() => AdapterMetadata.FromJson("{}", "empty.json"));
        Assert.Contains("origin is missing", error.Message);
        Assert.Contains("created is missing", error.Message);
    }

    [Fact]
    public void TrainingThatIsNotAnObjectCannotBeWritten()
    {
        var metadata = new AdapterMetadata { Origin = AdapterOrigin.FineTune, Created = DateTimeOffset.UtcNow, Training = default(JsonElement) };
        Assert.Throws<InvalidOperationException>(metadata.ToJson);
        var path = _temp.File(AdapterMetadata.FileName);
        Assert.Throws<InvalidOperationException>(() => metadata.Save(path));
        Assert.False(File.Exists(path));
    }
}
