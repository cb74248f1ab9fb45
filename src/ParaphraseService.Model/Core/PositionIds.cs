using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

public static class PositionIds
{
    /// <summary>
    /// Positions for a left-padded batch, as Hugging Face's generate computes them: every row's first real token is
    /// position 0; pads get 1 (their value does not matter, they are masked).
    /// </summary>
    /// <param name="attentionMask">(B, S), nonzero for real tokens.</param>
    public static Tensor FromAttentionMask(Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var mask = attentionMask.to(ScalarType.Int64);
        // position_ids = attention_mask.long().cumsum(-1) - 1; position_ids.masked_fill_(attention_mask == 0, 1)
        var positions = mask.cumsum(-1) - 1;
        return positions.masked_fill(mask.eq(0), 1).MoveToOuterDisposeScope();
    }
}
