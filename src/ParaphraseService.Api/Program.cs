using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Admin;
using ParaphraseService.Api.Health;
using OpenTelemetry.Metrics;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.OpenAi;
using ParaphraseService.Api.OpenApi;
using ParaphraseService.Api.Paraphrasing;
using ParaphraseService.Api.Scheduling;
using Serilog;
using Serilog.Formatting.Compact;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSerilog((services, logger) => logger
    .ReadFrom.Configuration(builder.Configuration)
    .Enrich.FromLogContext()
    .WriteTo.Console(new RenderedCompactJsonFormatter()));
builder.Services.AddProblemDetails();
builder.Services.AddEndpointsApiExplorer();
builder.Services.AddSwaggerGen(swagger => swagger.SchemaFilter<RequestExamples>());
builder.Services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddSingleton<ModelHost>();
builder.Services.AddHostedService(services => services.GetRequiredService<ModelHost>());
builder.Services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddSingleton<GenerationQueue>();
builder.Services.AddAdapterStore();
builder.Services.AddSingleton<StoreAdapterFolders>();
builder.Services.AddSingleton<IAdapterFolders>(services => services.GetRequiredService<StoreAdapterFolders>());
builder.Services.AddSingleton<ServiceMetrics>();
builder.Services.AddSingleton<ResidentAdapters>();
builder.Services.AddSingleton<Scheduler>();
builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
    .AddMeter(ServiceMetrics.MeterName)
    .AddAspNetCoreInstrumentation()
    .AddPrometheusExporter());
builder.Services.AddHostedService(services => services.GetRequiredService<Scheduler>());
builder.Services.AddParaphrasing();

var app = builder.Build();
app.UseSerilogRequestLogging(logging => logging.EnrichDiagnosticContext = (diagnostics, http) =>
    diagnostics.Set("RequestId", http.TraceIdentifier));
// Malformed JSON, wrong types, oversized bodies: the framework's 4xx, as ProblemDetails, never a 500.
app.UseExceptionHandler(new ExceptionHandlerOptions
{
    StatusCodeSelector = exception => exception is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
});
app.UseStatusCodePages();
app.UseSwagger();
app.UseSwaggerUI();
app.MapHealth();
app.MapPrometheusScrapingEndpoint("/metrics");
app.MapParaphrase();
app.MapAdapters();
var admin = app.MapAdminAdapters();
if (app.Services.GetRequiredService<IOptions<AdminOptions>>().Value.Port is { } adminPort)
    admin.RequireHost($"*:{adminPort}");
app.MapOpenAiCompletions();
app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
