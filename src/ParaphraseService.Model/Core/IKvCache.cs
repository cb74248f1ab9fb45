using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>Keys and values of earlier positions, for every layer, that a forward pass extends.</summary>
public interface IKvCache
{
    /// <summary>Positions the attention of the next forward sees before its own tokens (the mask covers Length + T).</summary>
    int Length { get; }

    ILayerKvCache Layer(int index);

    /// <summary>Called by the model once every layer has stored the new positions.</summary>
    void Advance(long count);
}

/// <summary>One layer's keys and values.</summary>
public interface ILayerKvCache
{
    /// <summary>Stores the new positions' keys and values (B, H, T, D); returns all keys and values to attend to (B, H, S, D).</summary>
    (Tensor Keys, Tensor Values) Append(Tensor keys, Tensor values);
}
