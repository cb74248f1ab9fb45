namespace ParaphraseService.Api.Requests;

/// <summary>
/// HEAD is answered as GET with the same status and headers and no body (RFC 9110 §9.3.2; load balancers probe health
/// with it). Minimal APIs route HEAD nowhere (405), so the request is routed as a GET; Kestrel keeps the method it parsed
/// and sends no body for a HEAD. Runs before routing; the logs see HEAD again.
/// </summary>
public static class HeadRequests
{
    public static IApplicationBuilder UseHeadAsGet(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await next(context);
            return;
        }
        context.Request.Method = HttpMethods.Get;
        try
        {
            await next(context);
        }
        finally
        {
            context.Request.Method = HttpMethods.Head;
        }
    });
}
