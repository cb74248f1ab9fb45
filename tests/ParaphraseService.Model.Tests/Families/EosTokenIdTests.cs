using System.Text.Json.Nodes;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Families;

/// <summary>eos_token_id as Hugging Face accepts it: one id, a list of ids, or null.</summary>
public sealed class EosTokenIdTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("eos-token-id-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private ICausalLMConfig Load(string modelType, string eos)
    {
        var config = modelType switch
        {
            "gptj" => JsonNode.Parse(File.ReadAllText(Fixtures.Get("gptj-tiny", "safetensors", "config.json")))!.AsObject(),
            "gpt_neo" => new JsonObject
            {
                ["model_type"] = "gpt_neo", ["vocab_size"] = 128, ["max_position_embeddings"] = 64, ["hidden_size"] = 32,
                ["num_layers"] = 2, ["num_heads"] = 4, ["attention_types"] = JsonNode.Parse("[[[\"global\", \"local\"], 1]]"),
            },
            _ => new JsonObject { ["model_type"] = "gpt2", ["vocab_size"] = 128, ["n_positions"] = 64, ["n_embd"] = 32, ["n_layer"] = 2, ["n_head"] = 4 },
        };
        config["bos_token_id"] = 0;
        config["eos_token_id"] = JsonNode.Parse(eos);
        var path = Path.Combine(_folder, "config.json");
        File.WriteAllText(path, config.ToJsonString());
        return ModelFamilies.LoadConfig(path).Config;
    }

    [Theory]
    [InlineData("gptj")]
    [InlineData("gpt_neo")]
    [InlineData("gpt2")]
    public void AListIsEveryStopIdAndItsFirstPads(string modelType)
    {
        // A list was "could not be converted to System.Int32".
        var config = Load(modelType, "[7, 9]");

        Assert.Equal([7, 9], config.EosTokenIds);
        Assert.Equal(7, config.EosTokenId);
        Assert.Equal(FinishReason.EndOfSequence, Finish(config, 9));
        Assert.Equal(FinishReason.EndOfSequence, Finish(config, 7));
        Assert.Equal(FinishReason.Length, Finish(config, 8));
    }

    [Theory]
    [InlineData("gptj")]
    [InlineData("gpt_neo")]
    [InlineData("gpt2")]
    public void NullIsNoEndOfSequence(string modelType)
    {
        var config = Load(modelType, "null");

        Assert.Empty(config.EosTokenIds);
        Assert.Equal(0, config.EosTokenId); // padding falls back to bos_token_id
        Assert.Equal(FinishReason.Length, Finish(config, 0));
    }

    [Fact]
    public void OneIdStaysOneIdAndIsWrittenBackAsANumber()
    {
        var config = (GptJConfig)Load("gptj", "5");
        Assert.Equal([5], config.EosTokenIds);
        Assert.Equal(5, (config with { EosTokenId = 5 }).EosTokenId);

        var path = Path.Combine(_folder, "saved.json");
        config.Save(path);
        Assert.Equal(5, (int)JsonNode.Parse(File.ReadAllText(path))!["eos_token_id"]!);
        // Ids compare by value: a config read twice is the same config.
        Assert.Equal(Load("gptj", "[7, 9]"), Load("gptj", "[7, 9]"));
        Assert.NotEqual(Load("gptj", "[7, 9]"), Load("gptj", "[7, 8]"));
    }

    [Theory]
    [InlineData("\"eos\"")]
    [InlineData("[1, \"two\"]")]
    public void AnythingElseNamesTheFileAndField(string eos)
    {
        var error = Assert.Throws<InvalidDataException>(() => Load("gptj", eos));

        Assert.Contains("config.json", error.Message, StringComparison.Ordinal);
        Assert.Contains("eos_token_id", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Why a sequence ends when the model's one new token is <paramref name="token"/>.</summary>
    private static FinishReason Finish(ICausalLMConfig config, int token)
    {
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        var state = new SequenceState([1, 2], new GenerationOptions { MaxNewTokens = 1 }, config, config.VocabSize, tokenizer);
        state.Accept(token, tokenizer);
        Assert.True(state.Finished);
        return state.Result(tokenizer).FinishReason;
    }
}
