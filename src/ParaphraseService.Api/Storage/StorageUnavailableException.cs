namespace ParaphraseService.Api.Storage;

/// <summary>The shared database cannot be reached (or is not ready yet): a write cannot be stored now; try again later (503).</summary>
public sealed class StorageUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
