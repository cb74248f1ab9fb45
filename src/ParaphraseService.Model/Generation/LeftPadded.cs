using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>
/// Prompts of different lengths as one batch, padded on the left so every row's last token sits in the last column
/// and one decode step serves all rows.
/// </summary>
public static class LeftPadded
{
    /// <returns>ids and attention mask (1 real, 0 padding), (B, longest prompt) each, on <paramref name="device"/>.</returns>
    public static (Tensor Ids, Tensor Mask) Batch(IReadOnlyList<IReadOnlyList<int>> prompts, int padId, Device device)
    {
        var length = prompts.Max(p => p.Count);
        var ids = new long[prompts.Count, length];
        var mask = new long[prompts.Count, length];
        for (var r = 0; r < prompts.Count; r++)
        {
            var pad = length - prompts[r].Count;
            for (var t = 0; t < length; t++)
            {
                ids[r, t] = t < pad ? padId : prompts[r][t - pad];
                mask[r, t] = t < pad ? 0 : 1;
            }
        }
        return (tensor(ids, device: device), tensor(mask, device: device));
    }
}
