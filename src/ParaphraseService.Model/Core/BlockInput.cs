using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>What a GPT-2-style decoder block (GPT-Neo, GPT-2) and its attention need besides the hidden states.</summary>
/// <param name="Hidden">(B, T, E) hidden states.</param>
/// <param name="Allowed">(B, 1, T, S) boolean: query t may attend to key s (causal, padding and, for local layers, the window).</param>
/// <param name="Cache">This layer's key/value cache, or null for a forward without one.</param>
public sealed record BlockInput(Tensor Hidden, Tensor Allowed, ILayerKvCache? Cache);
