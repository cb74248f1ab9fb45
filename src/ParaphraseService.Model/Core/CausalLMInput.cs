using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <param name="InputIds">(B, T) token ids of the new positions.</param>
/// <param name="AttentionMask">(B, past + T), 1 for real tokens and 0 for padding; null means no padding.</param>
/// <param name="PositionIds">(B, T) absolute positions; null derives them from the mask (left padding aware).</param>
/// <param name="Cache">Keys and values of earlier positions; extended in place by this forward.</param>
/// <param name="LastTokens">Compute logits for the last N positions only (1: what generation needs; more: a draft to verify);
/// 0: every position.</param>
/// <param name="Adapters">The LoRA adapter of each row (null entries: base model), for a model built with LoRA support.</param>
/// <param name="GradientCheckpointing">While training: recompute each block's activations in the backward pass instead of
/// keeping them (one more forward pass for the memory of one block's activations instead of all).</param>
public sealed record CausalLMInput(
    Tensor InputIds,
    Tensor? AttentionMask = null,
    Tensor? PositionIds = null,
    IKvCache? Cache = null,
    int LastTokens = 0,
    IReadOnlyList<LoraAdapter?>? Adapters = null,
    bool GradientCheckpointing = false);
