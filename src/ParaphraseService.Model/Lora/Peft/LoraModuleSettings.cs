namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// One adapted module's rank, alpha and scaling: the config's r and lora_alpha, or what its rank_pattern /
/// alpha_pattern give the module; <see cref="Scaling"/> is alpha / r (alpha / sqrt(r) with rsLoRA).
/// </summary>
public sealed record LoraModuleSettings(int R, double Alpha, double Scaling);
