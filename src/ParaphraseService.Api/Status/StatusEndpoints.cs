using Microsoft.AspNetCore.Http.HttpResults;

namespace ParaphraseService.Api.Status;

/// <summary>
/// The public status page at <c>/</c>, its JSON snapshot and the loss charts it refreshes. No admin key: it shows what
/// runs and how fast, never secrets, dataset paths or adapter folders.
/// </summary>
public static class StatusEndpoints
{
    public static RouteGroupBuilder MapStatusPage(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("").WithTags("Status");
        group.MapGet("/", Page)
            .WithSummary("The status page (HTML): model, serving numbers, memory, adapters, fine-tune jobs with loss charts.")
            .Produces(StatusCodes.Status200OK, contentType: "text/html");
        group.MapGet("/status.json", Json)
            .WithSummary("The status page's data: model, queue depth, active rows, tokens/s, memory, adapters, the newest fine-tune jobs.");
        group.MapGet("/status/fine-tunes/{id}/loss.svg", LossSvg)
            .WithSummary("A fine-tune job's train and eval loss curves as an SVG chart.")
            .Produces(StatusCodes.Status200OK, contentType: "image/svg+xml")
            .ProducesProblem(StatusCodes.Status404NotFound);
        return group;
    }

    private static ContentHttpResult Page([AsParameters] StatusSources sources, HttpResponse response)
    {
        response.Headers.CacheControl = "no-store";
        return TypedResults.Content(StatusPage.Render(sources.Capture()), "text/html; charset=utf-8");
    }

    private static Ok<StatusSnapshot> Json([AsParameters] StatusSources sources, HttpResponse response)
    {
        response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(sources.Capture());
    }

    private static Results<ContentHttpResult, ProblemHttpResult> LossSvg(string id, [AsParameters] StatusSources sources, HttpResponse response)
    {
        if (sources.Jobs.Get(id) is not { } job)
            return TypedResults.Problem($"No fine-tune job '{id}'.", statusCode: StatusCodes.Status404NotFound, title: "Not found");
        response.Headers.CacheControl = "no-store";
        return TypedResults.Content(LossChart.Svg(job.TrainLoss, job.EvalLoss), "image/svg+xml");
    }
}
