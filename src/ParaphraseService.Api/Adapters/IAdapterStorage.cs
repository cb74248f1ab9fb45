using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// Where adapters are kept, as the admin endpoints and the fine-tune runner change them: the embedded
/// <see cref="AdapterStore"/> (local folders) or the cluster's PostgreSQL store. Adapters are assembled in a local staging
/// folder, validated against the loaded base model, then published whole or not at all; every replica learns of a
/// change through <see cref="IAdapterSource.Changed"/>.
/// </summary>
public interface IAdapterStorage : IAdapterSource
{
    AdaptersOptions Options { get; }

    /// <summary>Where it keeps what it keeps, for the start-up log line.</summary>
    string Description { get; }

    /// <summary>What adapters are validated against: the loaded base model's modules; null until it is loaded.</summary>
    AdapterTarget? CurrentTarget();

    /// <summary>Why adapters cannot be validated now, for a 503.</summary>
    string ModelNotLoadedReason { get; }

    /// <summary>The adapter called <paramref name="name"/>, or null when there is none.</summary>
    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    AdapterInfo? Get(string name);

    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    bool Exists(string name);

    /// <summary>Removes the adapter; false when there was none.</summary>
    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    bool Delete(string name);

    /// <summary>A new, empty local folder to assemble an adapter in, for <see cref="Publish"/> or <see cref="DiscardStaging"/>.</summary>
    string CreateStagingFolder();

    /// <summary>A temporary local file, deleted when the stream is closed: where an uploaded zip is copied before it is unpacked.</summary>
    FileStream CreateUploadFile();

    /// <summary>Deletes a staging folder that will not be published.</summary>
    void DiscardStaging(string stagingFolder);

    /// <summary>
    /// Validates the adapter in <paramref name="stagingFolder"/> against the loaded base model and publishes it as
    /// <paramref name="name"/>, atomically. The staging folder is consumed.
    /// </summary>
    /// <exception cref="AdapterStoreException">Invalid name, name taken without <paramref name="replace"/>, no model loaded.</exception>
    /// <exception cref="AdapterValidationException">The files are not a LoRA adapter for the loaded base; lists why.</exception>
    PublishedAdapter Publish(string name, string stagingFolder, bool replace = false, AdapterOrigin origin = AdapterOrigin.Upload);

    /// <summary>Publishes a copy of the adapter files in a server-side folder, which is left as it was.</summary>
    /// <exception cref="AdapterStoreException">Invalid name or folder, name taken, no model loaded, too large.</exception>
    /// <exception cref="AdapterValidationException">The files are not a LoRA adapter for the loaded base; lists why.</exception>
    PublishedAdapter Import(string name, string sourceFolder, bool replace = false);
}
