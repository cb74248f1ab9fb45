using ParaphraseService.Model.Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora;

/// <summary>
/// A model LoRA adapters attach to: what they may target, the routing its <see cref="LoraLinear"/> layers share, and
/// its modules (TorchSharp's own <c>named_modules</c> and <c>parameters</c>). CausalLM is one; the registry takes this
/// interface rather than CausalLM because Lora/ sits below Core and the families.
/// </summary>
public interface IAdaptableModel
{
    /// <summary>Module paths adapters may target, with their shapes; what adapter files are validated against.</summary>
    AdapterTarget AdapterTarget { get; }

    /// <summary>The routing of adapters to batch rows, or null when the model was built without LoRA support.</summary>
    LoraRouting? Lora { get; }

    IEnumerable<(string name, nn.Module module)> named_modules();

    IEnumerable<Parameter> parameters(bool recurse = true);
}
