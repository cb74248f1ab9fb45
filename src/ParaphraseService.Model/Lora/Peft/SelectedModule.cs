namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// A module the config adapts, with its rank and alpha and the rank_pattern / alpha_pattern keys they came from
/// (null: the config's r / lora_alpha), and the resulting scaling.
/// </summary>
internal sealed record SelectedModule(int R, string? RankKey, double Alpha, string? AlphaKey, double Scaling)
{
    public LoraModuleSettings Settings => new(R, Alpha, Scaling);
}
