using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Admin;

public static class AdminExtensions
{
    /// <summary>Binds and validates the <c>Admin</c> section at start.</summary>
    public static IServiceCollection AddAdminApiKey(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<AdminOptions>().BindConfiguration(AdminOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        return services;
    }

    /// <summary>
    /// A group of admin endpoints: every one requires the admin API key (<see cref="ApiKeyEndpointFilter"/>) and, when
    /// <c>Admin:Port</c> is set, answers only on that port. The one place both rules are applied.
    /// </summary>
    public static RouteGroupBuilder MapAdminGroup(this IEndpointRouteBuilder app, string prefix, string tag)
    {
        ArgumentNullException.ThrowIfNull(app);
        var group = app.MapGroup(prefix).WithTags(tag);
        group.AddEndpointFilter<ApiKeyEndpointFilter>();
        group.ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        if (app.ServiceProvider.GetRequiredService<IOptions<AdminOptions>>().Value.Port is { } port)
            group.RequireHost($"*:{port}");
        return group;
    }
}
