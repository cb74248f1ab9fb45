using Microsoft.Extensions.Options;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Api.Hosting;

/// <summary>
/// Loads the configured model in the background when the app starts, so the process answers liveness probes while a
/// large checkpoint loads; readiness turns true once it is in memory.
/// </summary>
public sealed class ModelHost(IOptions<ModelOptions> options, ILogger<ModelHost> logger) : BackgroundService
{
    private volatile LoadedModel? _model;
    private readonly TaskCompletionSource<LoadedModel> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LoadedModel? Model => _model;

    /// <summary>Completes with the model once it is loaded; faults if loading fails.</summary>
    public Task<LoadedModel> Ready => _ready.Task;

    /// <summary>Why loading failed, if it did.</summary>
    public string? LoadError { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        try
        {
            logger.LogInformation("Loading model {Source} on {Device} as {Dtype}", o.Source, o.Device, o.Dtype);
            var loaded = await ModelSource.LoadAsync(o.Source, new ModelLoadOptions
            {
                Device = o.Device, Dtype = o.Dtype, Quantization = o.Quantization, KvCache = o.KvCache, MaxResidentAdapters = o.MaxResidentAdapters,
                Int8 = Int8Options.Default with
                {
                    Kernel = Enum.Parse<Int8Kernel>(o.Int8Kernel, ignoreCase: true), OutlierFactor = Int8Options.FromSetting(o.Int8OutlierFactor),
                },
            }, progress: null, stoppingToken);
            _model = loaded;
            _ready.TrySetResult(loaded);
            logger.LogInformation("Model {Source} ready: {Layers} layers, hidden size {Hidden}, {Device}, {Dtype}, weights {Quantization}{Int8Compute}, KV cache {KvCache}{Demo}",
                loaded.Source, loaded.Config.LayerCount, loaded.Config.HiddenSize, loaded.Device.type, loaded.Dtype, loaded.Quantization,
                loaded.Int8Compute is { } compute ? $" ({compute})" : "", loaded.KvCacheDtype, loaded.IsDemo ? $" ({DemoModel.Notice})" : "");
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            _ready.TrySetCanceled(stoppingToken);
        }
        catch (Exception e)
        {
            LoadError = e.Message;
            _ready.TrySetException(e);
            logger.LogError(e, "Loading model {Source} failed", o.Source);
        }
    }

    public override void Dispose()
    {
        _model?.Dispose();
        base.Dispose();
    }
}
