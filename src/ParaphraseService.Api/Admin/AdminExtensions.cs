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

    /// <summary>Every endpoint of <paramref name="group"/> requires the admin API key (see <see cref="ApiKeyEndpointFilter"/>).</summary>
    public static RouteGroupBuilder RequireAdminApiKey(this RouteGroupBuilder group)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.AddEndpointFilter<ApiKeyEndpointFilter>();
        group.ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return group;
    }
}
