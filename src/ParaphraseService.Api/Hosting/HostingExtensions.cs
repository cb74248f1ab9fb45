using System.Text.Json.Serialization;
using OpenTelemetry.Metrics;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.OpenAi;
using ParaphraseService.Api.OpenApi;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Storage;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Formatting.Compact;

namespace ParaphraseService.Api.Hosting;

/// <summary>The service's parts, registered as groups so Program.cs reads as a table of contents.</summary>
public static class HostingExtensions
{
    /// <summary>JSON logs (Serilog), Prometheus metrics (OpenTelemetry), ProblemDetails and the OpenAPI document.</summary>
    public static IServiceCollection AddOperations(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSerilog((_, logger) => logger
            .ReadFrom.Configuration(configuration)
            .Enrich.FromLogContext()
            .WriteTo.Console(new RenderedCompactJsonFormatter()));
        // Every error is a ProblemDetails; under /v1 it also carries OpenAI's error member. Route handlers throw what
        // they refuse before running (bad JSON, wrong types), so BadRequestHandler can name the field.
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = context =>
        {
            ProblemReasons.Fill(context);
            OpenAiErrors.AddTo(context);
        });
        // The web defaults read "2" as 2; OpenAI refuses a number sent as a string (as it refuses "false" for a
        // boolean), and so does every route here: request bodies and batch lines alike.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict);
        services.AddExceptionHandler<BadRequestHandler>();
        services.Configure<RouteHandlerOptions>(routes => routes.ThrowOnBadRequest = true);
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(swagger => swagger.SchemaFilter<RequestExamples>());
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(ServiceMetrics.MeterName)
            .AddAspNetCoreInstrumentation()
            .AddPrometheusExporter());
        return services;
    }

    /// <summary>
    /// The model (loaded in the background); the request pipeline in front of the queue; the scheduler that alone runs
    /// the model; the adapter manager that says which adapters sit on it; fine-tunes that share it; batches that feed it
    /// in the background.
    /// </summary>
    public static IServiceCollection AddModelServing(this IServiceCollection services)
    {
        services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ModelHost>();
        services.AddHostedService(provider => provider.GetRequiredService<ModelHost>());
        services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<SchedulerOptions>, SchedulerOptionsValidation>();
        services.AddSingleton<GenerationQueue>();
        services.AddSingleton<ServiceMetrics>();
        services.AddSingleton<SchedulerHealth>();
        services.AddSingleton<ModelThreadCommands>();
        services.AddAdapterStore();
        services.AddStorage();
        services.AddSingleton<IAdapterSource>(provider => provider.GetRequiredService<IAdapterStorage>());
        services.AddSingleton<AdapterManager>();
        services.AddSingleton<RequestPipeline>();
        services.AddFineTuning();
        services.AddSingleton<Scheduler>();
        services.AddHostedService(provider => provider.GetRequiredService<Scheduler>());
        services.AddBatches();
        return services;
    }

    /// <summary>
    /// Request logs with request ids, and every error as ProblemDetails (the framework's 4xx too, never a 500); a 413 closes
    /// its connection; HEAD answered wherever GET is.
    /// </summary>
    public static WebApplication UseOperations(this WebApplication app)
    {
        app.UseClosingAfterRefusedBodies();
        app.UseSerilogRequestLogging(logging => logging.EnrichDiagnosticContext = (diagnostics, http) =>
            diagnostics.Set("RequestId", http.TraceIdentifier));
        // Routing before the rest, as WebApplication would put it, once HEAD is a GET (logged as HEAD).
        app.UseHeadAsGet();
        app.UseRouting();
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = exception => exception is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
        });
        app.UseStatusCodePages();
        app.UseNodeRoles();
        app.UseSwagger();
        app.UseSwaggerUI();
        // GET only (and HEAD, which is routed as GET): the exporter maps every method.
        app.MapPrometheusScrapingEndpoint("/metrics").WithMetadata(new HttpMethodMetadata([HttpMethods.Get]));
        return app;
    }

    /// <summary>
    /// Composes the request pipeline (<paramref name="compose"/>: middleware and endpoints) and runs the service until
    /// it stops; returns the process's exit code. What an operator must fix before it can start (a setting refused, read
    /// while the endpoints are mapped or as the host starts; the address taken) is logged in words, naming it, and gives
    /// exit code 1, where the exception escaping Main aborted the process (134) with its stack trace.
    /// </summary>
    public static int RunService(this WebApplication app, Action<WebApplication> compose)
    {
        try
        {
            compose(app);
            app.Run();
            return 0;
        }
        catch (OptionsValidationException refused) when (IsTheProcess)
        {
            app.Logger.LogCritical("The service did not start: a setting is not valid. {Failures}", string.Join(" ", refused.Failures));
        }
        catch (IOException taken) when (IsTheProcess && taken.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            app.Logger.LogCritical("The service did not start: {Reason}", taken.Message);
        }
        return 1;
    }

    // Whether the service is the process (its own entry point), not hosted inside a test process, whose
    // WebApplicationFactory expects a start's exception to come through.
    private static bool IsTheProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(HostingExtensions).Assembly;
}
