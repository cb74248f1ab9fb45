using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace ParaphraseService.Api.Storage;

/// <summary>
/// A request that needed the shared database while it was unreachable answers 503 with a ProblemDetails that says so
/// (and Retry-After), never a 500: the replica itself is fine, and paraphrase requests with loaded adapters keep working.
/// </summary>
internal sealed class StorageUnavailableHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var unavailable = Find(exception);
        if (unavailable is null || context.Response.HasStarted)
            return false;
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Storage unavailable",
                Detail = unavailable.Message + " Changes cannot be stored now; try again shortly. Paraphrase requests with loaded adapters keep working.",
            },
        });
    }

    private static StorageUnavailableException? Find(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is StorageUnavailableException unavailable) return unavailable;
        return null;
    }
}
