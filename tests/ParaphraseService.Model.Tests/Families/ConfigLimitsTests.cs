using System.Text.Json.Nodes;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.GptNeo;

namespace ParaphraseService.Model.Tests.Families;

/// <summary>config.json values no model has: refused by name before anything of their size is built.</summary>
public sealed class ConfigLimitsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("config-limits-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static JsonObject Base(string modelType) => modelType switch
    {
        "gptj" => JsonNode.Parse(File.ReadAllText(Fixtures.Get("gptj-tiny", "safetensors", "config.json")))!.AsObject(),
        "gpt_neo" => new JsonObject
        {
            ["model_type"] = "gpt_neo", ["vocab_size"] = 128, ["max_position_embeddings"] = 64, ["hidden_size"] = 32,
            ["num_layers"] = 2, ["num_heads"] = 4, ["attention_types"] = JsonNode.Parse("[[[\"global\", \"local\"], 1]]"),
        },
        _ => new JsonObject
        {
            ["model_type"] = "gpt2", ["vocab_size"] = 128, ["n_positions"] = 64, ["n_embd"] = 32, ["n_layer"] = 2, ["n_head"] = 4,
        },
    };

    private string Write(JsonObject config)
    {
        var path = Path.Combine(_folder, "config.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Theory]
    [InlineData("gptj", "n_layer", 200_000L, "n_layer (200000) is over 1024")]
    [InlineData("gptj", "n_layer", 2_000_000L, "n_layer (2000000) is over 1024")]
    // 4 * n_embd wrapped around int: the MLP was built at a width no one wrote down.
    [InlineData("gptj", "n_embd", 1_100_000_000L, "n_embd (1100000000) is over 65536")]
    [InlineData("gptj", "vocab_size", 2_147_483_647L, "vocab_size (2147483647) is over 1048576")]
    [InlineData("gptj", "n_positions", 2_147_483_647L, "n_positions (2147483647) is over 1048576")]
    [InlineData("gptj", "n_inner", 2_147_483_647L, "n_inner (2147483647) is over 262144")]
    [InlineData("gpt2", "n_layer", 200_000L, "n_layer (200000) is over 1024")]
    [InlineData("gpt2", "n_embd", 1_100_000_000L, "n_embd (1100000000) is over 65536")]
    [InlineData("gpt2", "n_positions", 50_000_000L, "n_positions (50000000) is over 1048576")]
    [InlineData("gpt2", "vocab_size", 2_000_000_000L, "vocab_size (2000000000) is over 1048576")]
    [InlineData("gpt_neo", "num_layers", 2_000L, "num_layers (2000) is over 1024")]
    [InlineData("gpt_neo", "hidden_size", 1_100_000_000L, "hidden_size (1100000000) is over 65536")]
    [InlineData("gpt_neo", "max_position_embeddings", 50_000_000L, "max_position_embeddings (50000000) is over 1048576")]
    [InlineData("gpt_neo", "intermediate_size", 2_000_000_000L, "intermediate_size (2000000000) is over 262144")]
    public void AbsurdSizesAreRefusedNamingTheField(string modelType, string field, long value, string expected)
    {
        var config = Base(modelType);
        config[field] = value;
        var path = Write(config);

        var error = Assert.Throws<InvalidDataException>(() => ModelFamilies.LoadConfig(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    // 2147483647 repeats of two kinds were expanded into a list of 4.3 billion names to be counted.
    [InlineData("[[[\"global\", \"local\"], 2147483647]]", "attention_types describe 4294967294 layers but num_layers is 2")]
    [InlineData("[[[\"global\", \"local\"], 5000000]]", "attention_types describe 10000000 layers but num_layers is 2")]
    [InlineData("[[[\"global\", \"sparse\"], 1]]", "attention_types has kinds other than 'global' and 'local': 'sparse'")]
    public void AttentionTypesAreCheckedWithoutExpandingThem(string attentionTypes, string expected)
    {
        var config = Base("gpt_neo");
        config["attention_types"] = JsonNode.Parse(attentionTypes);
        var path = Write(config);

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<InvalidDataException>(() => ModelFamilies.LoadConfig(path));

        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - allocated, 0, 1 << 20);
        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PublishedConfigsAreWithinTheLimits()
    {
        GptJConfig.GptJ6B.Validate();
        GptNeoConfig.GptNeo27B.Validate();
        Gpt2Config.Gpt2Small.Validate();
        (Gpt2Config.Gpt2Small with { LayerCount = 48, HiddenSize = 1600, HeadCount = 25 }).Validate(); // GPT-2 XL
    }
}
