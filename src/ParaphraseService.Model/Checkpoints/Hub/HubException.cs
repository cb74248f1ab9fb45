namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>A Hub download or cache lookup that failed, with a message meant for the person running the service.</summary>
public sealed class HubException(HubErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public HubErrorKind Kind { get; } = kind;

    /// <summary>The HTTP status the Hub answered with, when the failure came from one.</summary>
    public int? StatusCode { get; init; }
}
