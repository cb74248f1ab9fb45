using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// One module's LoRA factors, as PEFT stores them: <see cref="A"/> [r, in] and <see cref="B"/> [out, r]; the module
/// computes base(x) + scaling * B(A(x)). Owned by the <see cref="PeftAdapter"/> that holds them.
/// </summary>
public sealed record LoraWeights(Tensor A, Tensor B);
