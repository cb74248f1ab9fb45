using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.OpenAi;
using ParaphraseService.Api.Paraphrasing;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ParaphraseService.Api.OpenApi;

/// <summary>A ready-to-send example body for each request type, so "Try it out" in Swagger UI works as is.</summary>
internal sealed class RequestExamples : ISchemaFilter
{
    private static readonly Dictionary<Type, string> s_examples = new()
    {
        [typeof(ParaphraseRequest)] = """
            {"text": "The meeting has been moved to Friday afternoon.", "candidates": 3, "maxNewTokens": 48, "temperature": 0.8, "topP": 0.95, "seed": 42}
            """,
        [typeof(CompletionRequest)] = """
            {"model": "demo", "prompt": "Rewrite this politely: send me the report now.", "max_tokens": 32, "temperature": 0.7, "n": 1, "stop": ["\n"], "seed": 7}
            """,
        [typeof(RegisterAdapterRequest)] = """
            {"name": "formal-tone", "path": "/data/adapters-incoming/formal-tone", "replace": false}
            """,
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema concrete && s_examples.TryGetValue(context.Type, out var example))
            concrete.Example = JsonNode.Parse(example);
    }
}
