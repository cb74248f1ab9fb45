using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.OpenAi;
using ParaphraseService.Api.Paraphrasing;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ParaphraseService.Api.OpenApi;

/// <summary>
/// An example for every body the API takes or returns: request examples are ready to send ("Try it out" in Swagger UI
/// works as is), response examples show what comes back.
/// </summary>
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
        [typeof(ParaphraseResponse)] = """
            {"model": "EleutherAI/gpt-j-6b", "adapter": null, "demo": false,
             "results": [{"input": "The meeting has been moved to Friday afternoon.",
                          "candidates": [{"text": "The meeting is now on Friday afternoon.", "similarity": 0.93, "novelty": 0.45, "score": 0.93}],
                          "dropped": {"empty": 0, "copies": 1, "duplicates": 1}}],
             "usage": {"promptTokens": 96, "completionTokens": 31}, "timings": {"queueMilliseconds": 2.1, "generationMilliseconds": 812.5}}
            """,
        [typeof(CompletionResponse)] = """
            {"id": "cmpl-6f1c", "object": "text_completion", "created": 1796031720, "model": "demo",
             "choices": [{"text": " Could you send me the report, please?", "index": 0, "logprobs": null, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}}
            """,
        [typeof(ModelList)] = """
            {"object": "list", "data": [{"id": "EleutherAI/gpt-j-6b", "object": "model", "created": 1796031720, "owned_by": "paraphrase-service"},
                                        {"id": "formal-tone", "object": "model", "created": 1796031720, "owned_by": "paraphrase-service:adapter"}]}
            """,
        [typeof(AdapterInfo)] = """
            {"name": "formal-tone", "baseModel": "EleutherAI/gpt-j-6b", "rank": 16, "alpha": 32, "useRslora": false,
             "targetModules": ["q_proj", "v_proj"], "targetModulesPattern": null, "sizeBytes": 15335424,
             "created": "2026-11-30T12:00:00Z", "origin": "fine-tune", "promptTemplate": "Original: {text}\nParaphrase:",
             "requestsServed": 42, "problem": null, "loaded": true}
            """,
        [typeof(FineTuneRequest)] = """
            {"adapter": "paws", "datasetPath": "/data/datasets/paws-dev.tsv", "format": "paws", "sampleSize": 5000, "evalFraction": 0.1,
             "targetModules": ["all-linear"], "rank": 16, "alpha": 32, "learningRate": 0.0002, "epochs": 1, "batchSize": 4, "evalEverySteps": 100}
            """,
        [typeof(FineTuneJob)] = """
            {"id": "ft-3f2a9c1b7d4e", "adapter": "paws", "state": "running", "createdAt": "2026-11-30T12:00:00Z", "startedAt": "2026-11-30T12:00:01Z",
             "finishedAt": null, "step": 120, "totalSteps": 793, "epoch": 1, "tokensPerSecond": 131.5, "etaSeconds": 2410.0, "error": null,
             "queuePosition": null, "resumedFromStep": null, "cancelRequested": false,
             "options": {"adapter": "paws", "rank": 16, "targetModules": ["all-linear"]},
             "dataset": {"rowsRead": 8000, "pairsRead": 3539, "trainCount": 3170, "evalCount": 356},
             "metrics": {"eval_loss_base": 4.91, "train_loss": 2.87},
             "trainLoss": [{"step": 1, "loss": 4.95}, {"step": 2, "loss": 4.71}], "evalLoss": [{"step": 100, "loss": 3.02}]}
            """,
        [typeof(Health.HealthEndpoints.HealthStatus)] = """
            {"status": "ready", "model": "EleutherAI/gpt-j-6b", "device": "cpu", "dtype": "Float32", "demo": false}
            """,
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema concrete && s_examples.TryGetValue(context.Type, out var example))
            concrete.Example = JsonNode.Parse(example);
    }
}
