namespace ParaphraseService.Api.Adapters;

/// <summary>What <see cref="AdapterStore.Publish"/> did: the adapter as now stored, and whether it replaced one.</summary>
public sealed record PublishedAdapter(AdapterInfo Adapter, bool Replaced);
