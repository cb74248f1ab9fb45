namespace ParaphraseService.Model.Core;

/// <summary>
/// How a family's checkpoint files differ from the model's own parameter names and shapes: GPT-2 files may leave out
/// the <c>transformer.</c> prefix (a bare GPT2Model's state dict) and store Conv1D weights [in, out] where the model
/// keeps a Linear [out, in]; tied families may still carry a copy of the tied <c>lm_head.weight</c>.
/// </summary>
/// <param name="OptionalPrefix">A prefix of the model's trunk keys that files may omit ("transformer."), or null.</param>
/// <param name="IsTransposed">Model keys whose full-precision tensor a file stores transposed (Conv1D weights).</param>
/// <param name="TiedHeadKey">A key the model shares with another tensor and never reads from a file ("lm_head.weight").</param>
public sealed record CheckpointConventions(string? OptionalPrefix = null, Func<string, bool>? IsTransposed = null, string? TiedHeadKey = null)
{
    /// <summary>Files named and shaped exactly as the model (GPT-J).</summary>
    public static CheckpointConventions Identity { get; } = new();
}
