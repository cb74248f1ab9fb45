namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// What <c>torch._utils._rebuild_tensor_v2</c> would build: a strided view (element offset, sizes, strides) into a storage
/// that several tensors may share.
/// </summary>
internal sealed record PickledTensor(PickledStorage Storage, long StorageOffset, long[] Shape, long[] Stride);
