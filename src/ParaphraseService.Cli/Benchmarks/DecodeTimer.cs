using System.Diagnostics;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Cli.Benchmarks;

/// <summary>Decode throughput of a model: cached single-token steps after a prefill, as generation runs them.</summary>
internal static class DecodeTimer
{
    private const int PromptLength = 16;

    /// <summary>A fixed batch of prompt ids from GPT-2's vocabulary.</summary>
    public static Tensor Prompt(int batch, int length) => randint(0, 50257, [batch, length], generator: new Generator(7, CPU));

    /// <summary>Generated tokens per second over <paramref name="steps"/> decode steps, best of two runs.</summary>
    /// <param name="adapters">Each row's LoRA adapter, or null for the base model.</param>
    public static double TokensPerSecond(CausalLM model, int batch, int steps, IReadOnlyList<LoraAdapter?>? adapters = null)
    {
        using var noGrad = no_grad();
        var best = double.MaxValue;
        for (var run = 0; run < 2; run++)
        {
            using var cache = new KvCache(model.Config.LayerCount, PromptLength + steps, model.KvCacheDtype);
            using var prompt = Prompt(batch, PromptLength);
            using (model.forward(new CausalLMInput(prompt, Cache: cache, LastTokens: 1, Adapters: adapters))) { }
            var next = zeros([batch, 1], ScalarType.Int64);
            var clock = Stopwatch.StartNew();
            for (var step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                var logits = model.forward(new CausalLMInput(next, Cache: cache, LastTokens: 1, Adapters: adapters));
                var chosen = logits.argmax(-1).DetachFromDisposeScope();
                next.Dispose();
                next = chosen;
            }
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
            next.Dispose();
        }
        return batch * steps / best;
    }
}
