namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>Why a Hub operation failed, so callers can map it (to an HTTP status, an exit code) without parsing text.</summary>
public enum HubErrorKind
{
    /// <summary>The model id is malformed (bad characters, path tricks, empty revision).</summary>
    InvalidModelId,

    /// <summary>The repository, revision or file does not exist on the Hub (HTTP 404).</summary>
    NotFound,

    /// <summary>The Hub refused access (HTTP 401/403): private or gated repository, missing or insufficient HF_TOKEN.</summary>
    Unauthorized,

    /// <summary>Offline mode is on (HF_HUB_OFFLINE) and the model is not (completely) in the local cache.</summary>
    NotInCache,

    /// <summary>The repository exists but lacks what a GPT-J checkpoint needs (config.json, weights).</summary>
    UnsupportedRepository,

    /// <summary>Downloaded bytes do not match the size or sha256 the Hub announced; the partial data was deleted.</summary>
    IntegrityCheckFailed,

    /// <summary>The Hub stayed unreachable or kept failing (connection errors, timeouts, 5xx, 429) after all attempts.</summary>
    Unavailable,

    /// <summary>The server answered something a Hugging Face Hub would not (missing headers, malformed JSON, unsafe names).</summary>
    InvalidResponse,

    /// <summary>Any other HTTP error status.</summary>
    HttpError,
}
