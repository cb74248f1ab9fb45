namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// One LoRA tensor's key in a PEFT state dict: <c>base_model.model.&lt;module&gt;.lora_A.weight</c> as PEFT's
/// save_pretrained writes it. Also read: the same without the <c>base_model.model.</c> prefix (as saved by
/// transformers' own PEFT integration) and with an adapter name before <c>weight</c> (<c>lora_A.default.weight</c>,
/// the in-memory form PEFT's loader also accepts).
/// </summary>
internal readonly record struct PeftStateDictKey(string Module, bool IsA, string? AdapterName)
{
    public const string Prefix = "base_model.model.";

    public string Factor => IsA ? "lora_A" : "lora_B";

    /// <summary>The key PEFT writes for this module and factor.</summary>
    public static string Standard(string module, bool isA) => $"{Prefix}{module}.{(isA ? "lora_A" : "lora_B")}.weight";

    /// <summary>Parses a LoRA weight key; false for anything else (biases, DoRA vectors, embeddings, base weights).</summary>
    public static bool TryParse(string key, out PeftStateDictKey parsed)
    {
        parsed = default;
        var rest = key.StartsWith(Prefix, StringComparison.Ordinal) ? key[Prefix.Length..] : key;
        if (!rest.EndsWith(".weight", StringComparison.Ordinal))
        {
            return false;
        }
        var segments = rest[..^".weight".Length].Split('.');
        // <module>.lora_X, or <module>.lora_X.<adapter name>
        var factorAt = segments.Length >= 2 && IsFactor(segments[^1]) ? segments.Length - 1
            : segments.Length >= 3 && IsFactor(segments[^2]) ? segments.Length - 2
            : -1;
        if (factorAt < 1 || segments[..factorAt].Any(string.IsNullOrEmpty))
        {
            return false;
        }
        var adapterName = factorAt == segments.Length - 2 ? segments[^1] : null;
        if (adapterName == "")
        {
            return false;
        }
        parsed = new PeftStateDictKey(string.Join('.', segments[..factorAt]), segments[factorAt] == "lora_A", adapterName);
        return true;
    }

    /// <summary>Why a key that is not a LoRA weight may be there, for error messages; null when there is no telling.</summary>
    public static string? Explain(string key)
    {
        if (key.Contains("lora_embedding_", StringComparison.Ordinal)) return "LoRA on an embedding layer";
        if (key.Contains("lora_magnitude_vector", StringComparison.Ordinal)) return "a DoRA magnitude vector";
        if (key.Contains(".lora_B", StringComparison.Ordinal) && key.EndsWith(".bias", StringComparison.Ordinal)) return "a lora_B bias (lora_bias)";
        if (key.Contains("modules_to_save", StringComparison.Ordinal)) return "a modules_to_save copy of a base module";
        if (key.EndsWith(".bias", StringComparison.Ordinal)) return "a trained base bias (bias 'all' or 'lora_only')";
        if (key.Contains("trainable_tokens_", StringComparison.Ordinal)) return "trainable token embeddings (trainable_token_indices)";
        // get_peft_model_state_dict: the embedding layers when the vocabulary was resized (or save_embedding_layers=True),
        // and since PEFT 0.15 modules_to_save copies, both under the layer's own key.
        if (key.EndsWith(".weight", StringComparison.Ordinal) && !key.Contains("lora_", StringComparison.Ordinal))
            return "a whole base layer: PEFT saves the embedding layers when the vocabulary was resized, and modules_to_save copies";
        return null;
    }

    private static bool IsFactor(string segment) => segment is "lora_A" or "lora_B";
}
