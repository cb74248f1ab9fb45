namespace ParaphraseService.Api.Adapters;

/// <summary>Why an <see cref="AdapterStore"/> operation was refused; the HTTP layer maps each to a status code.</summary>
public enum AdapterStoreError
{
    /// <summary>The name breaks <see cref="AdapterName"/>'s rules (400).</summary>
    InvalidName,

    /// <summary>No adapter has that name (404).</summary>
    NotFound,

    /// <summary>An adapter of that name exists and replacing it was not asked for (409).</summary>
    AlreadyExists,

    /// <summary>The base model is not loaded, so adapters cannot be validated against it (503).</summary>
    ModelNotLoaded,

    /// <summary>The adapter is built into the model (the demo's paws-demo): it cannot be deleted or replaced (409).</summary>
    BuiltIn,

    /// <summary>The upload or source folder is unsafe or malformed: zip-slip, zip bomb, unexpected files, ... (400).</summary>
    InvalidContent,
}
