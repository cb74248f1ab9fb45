using ParaphraseService.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Core;

/// <summary>
/// Which keys each new position may attend to, and at which absolute positions the new tokens sit, for a forward
/// with or without a cache and with left padding: shared by the families with learned positions.
/// </summary>
internal sealed class CausalMask
{
    private readonly Tensor _mask;

    /// <param name="maxPositions">The model's context; positions beyond it are refused with a message.</param>
    public CausalMask(CausalLMInput input, int maxPositions)
    {
        var ids = input.InputIds;
        var (b, t) = (ids.size(0), ids.size(1));
        var past = input.Cache?.Length ?? 0;
        var device = ids.device;
        _mask = input.AttentionMask?.to(ScalarType.Bool) ?? torch.ones(b, past + t, ScalarType.Bool, device);
        if (_mask.size(1) != past + t)
            throw new ArgumentException($"attention_mask covers {_mask.size(1)} positions but the cache holds {past} and the input {t}.");
        if (input.PositionIds is { } given && (given.dim() != 2 || given.size(0) != _mask.size(0) || given.size(1) != t))
            throw new ArgumentException($"position_ids must be (batch, {t}) for {t} new token(s), not [{string.Join(", ", given.shape)}].");
        long lastPosition;
        if (device.type == DeviceType.CPU && CpuKernels.Enabled)
        {
            (Positions, Allowed, lastPosition) = BuildOnCpu(_mask, input.PositionIds, (int)past, (int)t);
        }
        else
        {
            // position_ids = attention_mask.long().cumsum(-1) - 1; position_ids.masked_fill_(attention_mask == 0, 1)
            Positions = input.PositionIds ?? PositionIds.FromAttentionMask(_mask)[.., (int)past..];
            // Query t (absolute past + t) may see key s when s <= past + t and s is not padding: (B, 1, T, S).
            var causal = torch.ones(t, past + t, ScalarType.Bool, device).tril(past);
            Allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(_mask.unsqueeze(1).unsqueeze(1));
            if (input.PositionIds is not null && t > 1)
            {
                // Rows of a slot cache step sit at their own positions, not at the cache's last index: a query must not see
                // the keys its row wrote after it in the same step. Key position <= query position, per row.
                using var keyPositions = PositionIds.FromAttentionMask(_mask);                      // (B, S)
                using var before = keyPositions.unsqueeze(1).le(Positions.unsqueeze(2));            // (B, T, S)
                Allowed = Allowed.logical_and(before.unsqueeze(1));
            }
            lastPosition = Positions.numel() > 0 ? Positions.max().item<long>() : -1;
        }
        if (lastPosition >= maxPositions)
            throw new ArgumentOutOfRangeException(nameof(input), $"Position exceeds the model's context of {maxPositions} tokens.");
    }

    /// <summary>
    /// The same positions and mask as the LibTorch ops above, in one pass over the (B, S) mask: a decode step builds them
    /// for every forward, and the dozen ops cost more than the step's attention on a small model. Also the largest
    /// position (-1 for none).
    /// </summary>
    private static unsafe (Tensor Positions, Tensor Allowed, long LastPosition) BuildOnCpu(Tensor mask, Tensor? given, int past, int t)
    {
        var (b, s) = ((int)mask.size(0), past + t);
        using var scope = NewDisposeScope();
        var valid = TensorMemory.Bools(mask.contiguous());
        var positions = given is null ? empty(b, t, ScalarType.Int64) : given.to(ScalarType.Int64).contiguous();
        var allowed = empty(b, 1, t, s, ScalarType.Bool);
        var query = TensorMemory.Longs(positions);
        var allowedData = TensorMemory.Bools(allowed);
        var keyPositions = new long[s];
        // In a slot cache step with several tokens per row, rows sit at their own positions: a key also needs key position
        // <= query position, so a query does not see what its row wrote after it in the same step.
        var perRow = given is not null && t > 1;
        var lastPosition = -1L;
        for (var r = 0; r < b; r++)
        {
            var row = valid + (long)r * s;
            // position_ids = attention_mask.long().cumsum(-1) - 1; position_ids.masked_fill_(attention_mask == 0, 1)
            long seen = 0;
            for (var j = 0; j < s; j++)
            {
                if (row[j]) seen++;
                keyPositions[j] = row[j] ? seen - 1 : 1;
            }
            if (given is null)
                for (var i = 0; i < t; i++) query[(long)r * t + i] = keyPositions[past + i];
            for (var i = 0; i < t; i++)
            {
                var at = allowedData + ((long)r * t + i) * s;
                var position = query[(long)r * t + i];
                lastPosition = Math.Max(lastPosition, position);
                // causal (key index <= past + i) and not padding
                for (var j = 0; j < s; j++)
                    at[j] = j <= past + i && row[j] && (!perRow || keyPositions[j] <= position);
            }
        }
        return (given is null ? positions.MoveToOuterDisposeScope() : given, allowed.MoveToOuterDisposeScope(), lastPosition);
    }

    /// <summary>(B, T) absolute positions of the new tokens.</summary>
    public Tensor Positions { get; }

    /// <summary>(B, 1, T, S): causal and not padding.</summary>
    public Tensor Allowed { get; }

    /// <summary>
    /// <see cref="Allowed"/> limited to the last <paramref name="window"/> positions, the query's own included (GPT-Neo's
    /// local layers). Hugging Face measures the window in cache indices, <c>bias ^ tril(bias, -window_size)</c>, i.e.
    /// query_index - key_index &lt; window_size; here it is measured in positions, which is the same distance for any
    /// contiguous sequence (left padding shifts query and key alike) and stays right in a slot cache, where a row's
    /// query does not sit at the last index.
    /// </summary>
    public Tensor Local(int window)
    {
        using var scope = NewDisposeScope();
        var keyPositions = PositionIds.FromAttentionMask(_mask);                  // (B, S)
        var distance = Positions.unsqueeze(2) - keyPositions.unsqueeze(1);        // (B, T, S)
        return Allowed.logical_and(distance.lt(window).unsqueeze(1)).MoveToOuterDisposeScope();
    }
}
