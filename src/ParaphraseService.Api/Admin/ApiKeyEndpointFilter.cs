using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Admin;

/// <summary>
/// Lets a request through only with the configured admin key in the <see cref="AdminOptions.Header"/> header: 401
/// without the header, 403 with another key, 503 when no key is configured (admin disabled). Runs before the handler
/// reads the body, so a refused upload costs nothing. The key is read per request, so a reloaded configuration
/// rotates it without a restart.
/// </summary>
public sealed class ApiKeyEndpointFilter(IOptionsMonitor<AdminOptions> options, ILogger<ApiKeyEndpointFilter> logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var o = options.CurrentValue;
        if (!o.Enabled)
        {
            return TypedResults.Problem($"The admin endpoints are disabled: no {AdminOptions.Section}:ApiKey is configured.",
                statusCode: StatusCodes.Status503ServiceUnavailable, title: "Admin disabled");
        }

        var http = context.HttpContext;
        var presented = http.Request.Headers[o.Header];
        if (presented.Count == 0 || string.IsNullOrEmpty(presented[0]))
        {
            return TypedResults.Problem($"This endpoint needs the admin API key in the {o.Header} header.",
                statusCode: StatusCodes.Status401Unauthorized, title: "API key required");
        }
        if (presented.Count != 1 || !KeysEqual(presented[0]!, o.ApiKey!))
        {
            logger.LogWarning("Refused an admin request to {Path} from {Remote}: wrong API key", http.Request.Path, http.Connection.RemoteIpAddress);
            return TypedResults.Problem($"The API key in the {o.Header} header is not the admin key.",
                statusCode: StatusCodes.Status403Forbidden, title: "Wrong API key");
        }
        return await next(context);
    }

    /// <summary>Constant time whatever the inputs: both are hashed to 32 bytes, so not even their lengths leak.</summary>
    internal static bool KeysEqual(string presented, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
