namespace ParaphraseService.Api.Requests;

/// <summary>
/// A 413 leaves the request body unread. Kestrel then drops the HTTP/1.1 connection once the endpoint returns, but its
/// headers have already gone out promising keep-alive, so a client that reuses the connection loses its next request
/// ("the response ended prematurely"). Saying <c>Connection: close</c> in the refusal itself lets every client open a
/// fresh connection instead.
/// </summary>
public static class RefusedBodyConnection
{
    public static IApplicationBuilder UseClosingAfterRefusedBodies(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        if (HttpProtocol.IsHttp11(context.Request.Protocol))
        {
            context.Response.OnStarting(static state =>
            {
                var response = (HttpResponse)state;
                if (response.StatusCode == StatusCodes.Status413PayloadTooLarge)
                    response.Headers.Connection = "close";
                return Task.CompletedTask;
            }, context.Response);
        }
        return next(context);
    });
}
