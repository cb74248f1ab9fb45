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

    internal Scope Use(IReadOnlyList<LoraAdapter?>? rows)
    {
        if (Rows is not null)
            throw new InvalidOperationException("A forward pass with adapters is already running on this model.");
        Rows = rows is null || rows.All(r => r is null) ? null : rows;
        return new Scope(this);
    }

    internal readonly struct Scope(LoraRouting owner) : IDisposable
    {
        public void Dispose() => owner.Rows = null;
    }
}
