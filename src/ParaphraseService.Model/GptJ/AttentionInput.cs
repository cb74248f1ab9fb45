using ParaphraseService.Model.Core;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>What a decoder block and its attention need besides the hidden states.</summary>
/// <param name="Hidden">(B, T, E) hidden states.</param>
/// <param name="Allowed">(B, 1, T, S) boolean: query t may attend to key s (causal and padding combined).</param>
/// <param name="Rotary">sin and cos of the new tokens' absolute positions, computed once for all layers.</param>
/// <param name="Cache">This layer's key/value cache, or null for a forward without one.</param>
public sealed record AttentionInput(Tensor Hidden, Tensor Allowed, RotaryAngles Rotary, ILayerKvCache? Cache);
