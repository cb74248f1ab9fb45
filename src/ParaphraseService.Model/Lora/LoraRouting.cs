namespace ParaphraseService.Model.Lora;

/// <summary>
/// Which adapter each batch row uses during one forward pass, shared by every <see cref="LoraLinear"/> of a model.
/// The model sets it around a forward and clears it after, so layers need no extra arguments; one model runs one
/// forward at a time (the scheduler owns it), which is what makes a shared slot safe.
/// </summary>
public sealed class LoraRouting
{
    /// <summary>One entry per batch row (null: the base model alone), or null when no row uses an adapter.</summary>
    public IReadOnlyList<LoraAdapter?>? Rows { get; private set; }

    /// <summary>
    /// The adapters of <see cref="Rows"/>, each once, in the order of their first row: worked out once per forward
    /// rather than by each of its dozens of layers.
    /// </summary>
    public IReadOnlyList<LoraAdapter> Adapters { get; private set; } = [];

    internal Scope Use(IReadOnlyList<LoraAdapter?>? rows)
    {
        if (Rows is not null)
            throw new InvalidOperationException("A forward pass with adapters is already running on this model.");
        Rows = rows is null || rows.All(r => r is null) ? null : rows;
        Adapters = Rows is null ? [] : [.. Rows.OfType<LoraAdapter>().Distinct()];
        return new Scope(this);
    }

    internal readonly struct Scope(LoraRouting owner) : IDisposable
    {
        public void Dispose() => (owner.Rows, owner.Adapters) = (null, []);
    }
}
