using System.Runtime.CompilerServices;
using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.GptJ;

/// <summary>
/// GPT-J's rotary position embedding: interleaved pairs of the first <c>rotary_dim</c> dims of each head are rotated
/// by a position-dependent angle, the rest pass through. The sin/cos table is computed once per length, not per
/// forward, and is shared by every layer (it holds no checkpoint tensors). It covers the positions used so far, not
/// all of n_positions: a config may declare far more context than is ever used (n_positions 50,000,000 made a 9.7 GB
/// table at load).
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    // GPT-J-6B's whole context: a table of 512 KB at rotary_dim 64, built at load as before.
    private const int InitialPositions = 2048;

    private readonly int _rotaryDim;
    private readonly int _maxPositions;
    private readonly Lock _grow = new();
    private Tensor sin; // (P, rd/2), P <= n_positions
    private Tensor cos;

    public RotaryEmbedding(int rotaryDim, int maxPositions)
    {
        _rotaryDim = rotaryDim;
        _maxPositions = maxPositions;
        (sin, cos) = Table(rotaryDim, Math.Min(maxPositions, InitialPositions));
    }

    /// <summary>How many positions the table covers now.</summary>
    internal long TablePositions => sin.size(0);

    // The table is built on the CPU, also when the weights start on the meta device: it is not a checkpoint tensor, so
    // the loader never replaces it. Each row depends only on its position, so a longer table extends a shorter one.
    private static (Tensor Sin, Tensor Cos) Table(int rotaryDim, long positions)
    {
        using var scope = NewDisposeScope();
        // inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.int64) / dim))
        var invFreq = 1.0f / torch.pow(10000f, torch.arange(0, rotaryDim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / rotaryDim);
        // sinusoid_inp = torch.einsum("i , j -> i j", torch.arange(num_pos).float(), inv_freq)
        var angles = torch.outer(torch.arange(positions, dtype: ScalarType.Float32), invFreq); // (P, rd/2)
        return (angles.sin().DetachFromDisposeScope(), angles.cos().DetachFromDisposeScope());
    }

    /// <summary>
    /// The sin and cos of absolute positions (B, T), each (B, T, 1, rotary_dim): gathered once per forward and shared by
    /// every layer's q and k.
    /// </summary>
    public RotaryAngles Angles(Tensor positionIds)
    {
        var last = positionIds.numel() > 0 ? positionIds.max().item<long>() : -1;
        if (last >= _maxPositions)
            throw new ArgumentOutOfRangeException(nameof(positionIds), $"Position exceeds the model's context of {_maxPositions} tokens.");
        // The gathers copy their rows, so a table replaced by a later call is never read after it is disposed.
        lock (_grow)
        {
            Cover(last + 1);
            EnsureOn(positionIds.device);
            // sin = torch.repeat_interleave(sin[:, :, None, :], 2, 3)
            return new RotaryAngles(sin[positionIds].unsqueeze(2).repeat_interleave(2, 3), cos[positionIds].unsqueeze(2).repeat_interleave(2, 3));
        }
    }

    /// <summary>
    /// Rotates q or k, shaped (B, T, H, D), by precomputed angles. Returns fp32. With <paramref name="overwrite"/> the
    /// caller hands over <paramref name="x"/> (a projection's fresh output it reads no more), and the CPU pass may rotate it
    /// in place rather than copy it first (the copy was most of the pass's cost at decode).
    /// </summary>
    public Tensor Apply(Tensor x, RotaryAngles angles, bool overwrite = false)
    {
        if (CpuKernels.Active && x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && angles.Sin.is_contiguous() && angles.Cos.is_contiguous())
            return RotateOnCpu(overwrite && x.is_contiguous() ? x : x.contiguous().clone(), angles);
        using var scope = NewDisposeScope();
        x = x.to(ScalarType.Float32);
        var rot = x[.., .., .., ..(int)_rotaryDim];
        var pass = x[.., .., .., (int)_rotaryDim..];
        // (tensor * cos) + (rotate_every_two(tensor) * sin)
        var rotated = rot * angles.Cos + RotateEveryTwo(rot) * angles.Sin;
        return torch.cat([rotated, pass], dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>Rotates q or k, shaped (B, T, H, D), at absolute positions (B, T). Returns fp32.</summary>
    public Tensor Apply(Tensor x, Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        return Apply(x, Angles(positionIds)).MoveToOuterDisposeScope();
    }

    // The same products and sums as the LibTorch path below, in one pass over x (contiguous, rotated in place) instead of
    // a dozen ops.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe Tensor RotateOnCpu(Tensor rotated, RotaryAngles angles)
    {
        var (rows, heads, headDim) = (rotated.size(0) * rotated.size(1), (int)rotated.size(2), (int)rotated.size(3));
        var data = TensorMemory.Floats(rotated);
        var sin = TensorMemory.Floats(angles.Sin);
        var cos = TensorMemory.Floats(angles.Cos);
        for (long r = 0; r < rows; r++)
        {
            // (B, T, 1, rotary_dim) angles: one row of sin and cos per token, the same for every head
            var s = sin + r * _rotaryDim;
            var c = cos + r * _rotaryDim;
            for (var h = 0; h < heads; h++)
            {
                var v = data + (r * heads + h) * headDim;
                for (var i = 0; i < _rotaryDim; i += 2)
                {
                    // (tensor * cos) + (rotate_every_two(tensor) * sin), rotate_every_two(x)[2i, 2i+1] = (-x[2i+1], x[2i])
                    var (even, odd) = (v[i], v[i + 1]);
                    v[i] = even * c[i] + -odd * s[i];
                    v[i + 1] = odd * c[i + 1] + even * s[i + 1];
                }
            }
        }
        return rotated;
    }

    // x1 = x[:, :, :, ::2]; x2 = x[:, :, :, 1::2]; torch.stack((-x2, x1), dim=-1).flatten(-2)
    private static Tensor RotateEveryTwo(Tensor x)
    {
        var x1 = x[.., .., .., TensorIndex.Slice(0, null, 2)];
        var x2 = x[.., .., .., TensorIndex.Slice(1, null, 2)];
        return torch.stack([-x2, x1], dim: -1).flatten(-2);
    }

    public void Dispose()
    {
        sin.Dispose();
        cos.Dispose();
    }

    // Doubling keeps a growing context to a few rebuilds.
    private void Cover(long positions)
    {
        if (positions <= sin.size(0)) return;
        var device = sin.device;
        var (newSin, newCos) = Table(_rotaryDim, Math.Min(_maxPositions, Math.Max(positions, 2 * sin.size(0))));
        sin.Dispose();
        cos.Dispose();
        (sin, cos) = (newSin, newCos);
        EnsureOn(device);
    }

    // The table stays fp32 whatever the model's dtype (rotary math runs in fp32, as in Hugging Face), and follows the
    // activations to their device the first time it meets them.
    private void EnsureOn(Device device)
    {
        if (sin.device == device) return;
        var (oldSin, oldCos) = (sin, cos);
        sin = oldSin.to(device).DetachFromDisposeScope();
        cos = oldCos.to(device).DetachFromDisposeScope();
        oldSin.Dispose();
        oldCos.Dispose();
    }
}

/// <summary>sin and cos of the positions of one forward pass, (B, T, 1, rotary_dim) each.</summary>
public sealed record RotaryAngles(Tensor Sin, Tensor Cos);
