using Microsoft.AspNetCore.Http.HttpResults;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Health;

public static class HealthEndpoints
{
    public sealed record HealthStatus(string Status, string? Model = null, string? Device = null, string? Dtype = null, bool? Demo = null);

    public static RouteGroupBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/health").WithTags("Operations");
        group.MapGet("/live", Live).WithSummary("The process is up.");
        group.MapGet("/ready", Ready).WithSummary("The model is loaded and requests can be served.");
        return group;
    }

    private static Ok<HealthStatus> Live() => TypedResults.Ok(new HealthStatus("live"));

    private static Results<Ok<HealthStatus>, ProblemHttpResult> Ready(ModelHost host) => host.Model is { } model
        ? TypedResults.Ok(new HealthStatus("ready", model.Source, model.Device.type.ToString().ToLowerInvariant(), model.Dtype.ToString(), model.IsDemo))
        : TypedResults.Problem(
            host.LoadError is { } error ? $"Loading the model failed: {error}" : "The model is still loading.",
            statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");
}
