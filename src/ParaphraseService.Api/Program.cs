using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Health;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.OpenAi;
using ParaphraseService.Api.Paraphrasing;
using ParaphraseService.Api.Status;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddOperations(builder.Configuration);
builder.Services.AddModelServing();
builder.Services.AddParaphrasing();

var app = builder.Build();
return app.RunService(app =>
{
    app.UseOperations();
    app.MapHealth();
    app.MapParaphrase();
    app.MapAdapters();
    app.MapAdminAdapters();
    app.MapOpenAiCompletions();
    app.MapOpenAiChatCompletions();
    app.MapFineTunes();
    app.MapBatches();
    app.MapStatusPage();
});

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
