using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Storage;

namespace ParaphraseService.Api.Hosting;

public static class NodeRoleFilter
{
    /// <summary>
    /// A train-only node (<c>Node:Roles=train</c>) answers health and metrics only (unless <c>Node:ServeRequests</c>):
    /// every other request gets a 503 ProblemDetails saying where to send it, so a misrouted client learns why.
    /// </summary>
    public static WebApplication UseNodeRoles(this WebApplication app)
    {
        var node = app.Services.GetRequiredService<IOptions<NodeOptions>>().Value;
        if (node.AnswersRequests) return app;
        app.Use(async (context, next) =>
        {
            var path = context.Request.Path;
            if (path.StartsWithSegments("/health") || path.StartsWithSegments("/metrics"))
            {
                await next(context);
                return;
            }
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                ProblemDetails = new ProblemDetails
                {
                    Status = StatusCodes.Status503ServiceUnavailable,
                    Title = "Training node",
                    Detail = $"This node only trains fine-tunes (Node:Roles={node.Roles}): send requests to the serving replicas. " +
                        "It answers /health and /metrics (set Node:ServeRequests=true to serve requests here too).",
                },
            });
        });
        return app;
    }
}
