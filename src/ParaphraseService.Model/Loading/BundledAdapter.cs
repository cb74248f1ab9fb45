namespace ParaphraseService.Model.Loading;

/// <summary>
/// A LoRA adapter that ships with a model (the demo model's paraphrase adapter): a PEFT folder with its
/// <c>paraphrase_adapter.json</c>, to be listed beside stored adapters and used when a request names none.
/// </summary>
/// <param name="Name">The adapter's name, as requests would name it.</param>
/// <param name="Folder">Its PEFT folder (read-only: it sits beside the assembly).</param>
public sealed record BundledAdapter(string Name, string Folder);
