namespace ParaphraseService.Model.Lora.Peft;

/// <summary>Where an adapter came from; written as "upload" or "fine-tune" in <see cref="AdapterMetadata.FileName"/>.</summary>
public enum AdapterOrigin
{
    /// <summary>A PEFT adapter a user uploaded.</summary>
    Upload,

    /// <summary>An adapter this service trained.</summary>
    FineTune,
}
