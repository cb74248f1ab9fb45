using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>A storage named by a torch.save persistent id: its bytes are the zip entry <c>data/{Key}</c>.</summary>
internal sealed record PickledStorage(string Key, ScalarType DType, long ElementCount);
