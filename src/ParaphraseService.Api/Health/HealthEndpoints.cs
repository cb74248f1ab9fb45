using Microsoft.AspNetCore.Http.HttpResults;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Storage;

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

    /// <summary>
    /// Ready when the model is loaded, decode steps work, the storage is usable (cluster mode: the shared database was
    /// reached and its schema is in place), and the service is not stopping (it turns 503 as soon as shutdown starts,
    /// so a load balancer stops sending requests while the queue drains). A database lost later does not make a
    /// replica unready: requests with loaded adapters go on.
    /// </summary>
    private static Results<Ok<HealthStatus>, ProblemHttpResult> Ready(ModelHost host, SchedulerHealth scheduler, IStorageHealth storage, IHostApplicationLifetime lifetime)
    {
        if (lifetime.ApplicationStopping.IsCancellationRequested)
            return NotReady("The service is shutting down.");
        if (storage.Problem is { } storageProblem)
            return NotReady(storageProblem);
        if (host.Model is not { } model)
            return NotReady(host.LoadError is { } error ? $"Loading the model failed: {error}" : "The model is still loading.");
        if (scheduler.Problem is { } problem)
            return NotReady(problem);
        return TypedResults.Ok(new HealthStatus("ready", model.Source, model.Device.type.ToString().ToLowerInvariant(), model.Dtype.ToString(), model.IsDemo));
    }

    private static ProblemHttpResult NotReady(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");
}
