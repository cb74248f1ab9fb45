#!/usr/bin/python3
"""Our int8 against the scheme everyone ships, side by side on the same weights and the same tokens.

    /usr/bin/python3 scripts/compare-int8.py [--model DIR] [--cli "dotnet run -c Release --project src/ParaphraseService.Cli --"]

Needs Debian 13's python3-torch and python3-safetensors (and libopenblas0-pthread). Without --model it writes the
random GPT-J-shaped bench-250m checkpoint (float32, 1 GB) with `paraphrase make-checkpoint` into a temporary folder.

On the same token windows (the first lines of tests/fixtures/demo-model/heldout.txt, GPT-2 tokens), it measures the
relative L2 error of int8 logits against fp32 logits (every position but each window's last):
- ours: `paraphrase eval --compare none,int8` with the fbgemm kernel and with the dequantize kernel;
- the standard scheme (ONNX Runtime's `quantize_dynamic(per_channel=True)`, PyTorch's `quantize_dynamic` with a
  per-channel qconfig) on every nn.Linear (lm_head included; the embedding stays fp32): per-channel symmetric int8
  weights, each Linear's input quantized per tensor at run time; computed exactly in fp32 (fake quantization) with
  8-bit activations and with 7 (PyTorch's reduce_range, what fbgemm CPUs without VNNI need); our scheme simulated
  the same way (its 7-bit row checks the simulation against the kernel; its 8-bit row is what CPUs with VNNI run);
- PyTorch's own `quantize_dynamic` kernels with per-channel and per-tensor weights, on the engine this PyTorch has
  (Debian's has oneDNN, not fbgemm).
The fp32 perplexities of both sides are printed too: equal, they show both ran the same model on the same tokens.
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "tests", "fixtures", "demo-model", "heldout.txt")


def run(cli, *args):
    command = shlex.split(cli) + list(args)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done.stdout


# ----------------------------------------------------------------------------- GPT-J with nn.Linear layers (modeling_gptj.py)
def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        e = c["n_embd"]
        self.heads, self.rotary = c["n_head"], c["rotary_dim"]
        self.ln_1 = nn.LayerNorm(e, eps=c["layer_norm_epsilon"])
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(e, e, bias=False) for _ in range(4))
        self.fc_in, self.fc_out = nn.Linear(e, 4 * e), nn.Linear(4 * e, e)

    def forward(self, x, sin, cos):
        b, t, e = x.shape
        d, r = e // self.heads, self.rotary
        h = self.ln_1(x)
        q, k, v = (p(h).view(b, t, self.heads, d) for p in (self.q_proj, self.k_proj, self.v_proj))

        def rotate(z):  # rotate_every_two on the first rotary_dim dims, sin/cos repeated element-wise
            s, c = sin.repeat_interleave(2, -1)[None, :, None, :], cos.repeat_interleave(2, -1)[None, :, None, :]
            pairs = z[..., :r].unflatten(-1, (-1, 2))
            swapped = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)
            return torch.cat([z[..., :r] * c + swapped * s, z[..., r:]], -1)

        q, k, v = rotate(q).transpose(1, 2), rotate(k).transpose(1, 2), v.transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        scores = scores.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), torch.finfo(scores.dtype).min)
        a = self.out_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, e))
        return x + a + self.fc_out(gelu_new(self.fc_in(h)))


class GptJ(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"])
        r = c["rotary_dim"]
        inv_freq = 1.0 / torch.pow(10000, torch.arange(0, r, 2).float() / r)
        angles = torch.outer(torch.arange(c["n_positions"]).float(), inv_freq)
        self.sin, self.cos = angles.sin(), angles.cos()

    def forward(self, ids):
        t = ids.shape[1]
        x = self.wte(ids)
        for block in self.h:
            x = block(x, self.sin[:t], self.cos[:t])
        return self.lm_head(self.ln_f(x)).float()

    def load(self, tensors):
        state = {k.removeprefix("transformer.").replace("attn.", "").replace("mlp.", ""): v.float() for k, v in tensors.items()
                 if not k.endswith(("attn.bias", "attn.masked_bias"))}
        self.load_state_dict(state)
        return self


class FakeQuantized:
    """A dynamic int8 scheme computed exactly in fp32 (fake quantization), free of any kernel's quirks. Every nn.Linear
    gets per-output-channel symmetric int8 weights; its input is quantized at each call, asymmetric over
    [min(x, 0), max(x, 0)] in 2^bits levels with an integer zero point (PyTorch's ChooseQuantizationParams):
    per tensor (the standard scheme) or per row (ours: the range clipped at 3x the row's mean magnitude, the values beyond it exact). bits
    None leaves activations in fp32; embedding=True stores the token embedding in per-row int8 too (ours)."""

    def __init__(self, model, bits, per_row=False, embedding=False):
        import copy
        self.model = copy.deepcopy(model)
        for module in self.model.modules():
            if isinstance(module, nn.Linear) or (embedding and isinstance(module, nn.Embedding)):
                w = module.weight.data
                scale = (w.abs().amax(1, keepdim=True) / 127).clamp_min(1e-12)
                module.weight.data = (w / scale).round().clamp(-127, 127) * scale
            if isinstance(module, nn.Linear) and bits is not None:
                quantize = per_row_activations if per_row else quantize_activations
                module.register_forward_pre_hook(lambda m, args, q=quantize: (q(args[0], 2 ** bits - 1),))

    def __call__(self, ids):
        return self.model(ids)


def quantize_activations(x, levels, dim=None):
    """Asymmetric quantization over [min(x, 0), max(x, 0)], over the whole tensor or along `dim`."""
    low = (x.amin(dim, keepdim=True) if dim is not None else x.min()).clamp(max=0)
    high = (x.amax(dim, keepdim=True) if dim is not None else x.max()).clamp(min=0)
    scale = (high - low) / levels
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = (-low / scale).round().clamp(0, levels)
    return ((x / scale).round() + zero).clamp(0, levels).sub(zero) * scale


def per_row_activations(x, levels, factor=3.0):
    """Ours: each row over its own range, clipped at `factor` times the row's mean magnitude; the values beyond it
    are multiplied exactly (fp32 against the int8 weight column), so here they pass unquantized."""
    threshold = factor * x.abs().mean(-1, keepdim=True)
    outliers = torch.where(x.abs() > threshold, x, torch.zeros_like(x))
    clipped = torch.maximum(torch.minimum(x, threshold), -threshold)
    low = clipped.amin(-1, keepdim=True).clamp(max=0)
    high = clipped.amax(-1, keepdim=True).clamp(min=0)
    scale = (high - low) / levels
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = (-low / scale).round().clamp(0, levels)
    kept = ((x - outliers) / scale).round().add(zero).clamp(0, levels).sub(zero) * scale
    return kept + outliers


def logits_of(model, windows):
    with torch.no_grad():
        return [model(torch.tensor([w]))[0, :-1] for w in windows]


def relative_error(ours, reference):
    num = sum(((a - b) ** 2).double().sum().item() for a, b in zip(ours, reference))
    den = sum((b ** 2).double().sum().item() for b in reference)
    return math.sqrt(num / den)


def nll(logits, windows):
    total = sum(F.cross_entropy(l.double(), torch.tensor(w[1:]), reduction="sum").item() for l, w in zip(logits, windows))
    return total / sum(len(w) - 1 for w in windows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a GPT-J folder with safetensors weights (default: bench-250m, written to a temporary folder)")
    parser.add_argument("--cli", default="dotnet run -c Release --project src/ParaphraseService.Cli --")
    parser.add_argument("--lines", type=int, default=40, help="lines of the text taken")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # Debian's python3-torch has no fbgemm engine; oneDNN runs the same dynamic int8 Linear on x86.
    engine = next(e for e in ("fbgemm", "x86", "onednn", "qnnpack") if e in torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine

    with tempfile.TemporaryDirectory(prefix="compare-int8-") as temp:
        folder = args.model
        if folder is None:
            folder = os.path.join(temp, "bench-250m")
            run(args.cli, "make-checkpoint", "--preset", "bench-250m", "--dtype", "float32", "--out", folder)
        text = os.path.join(temp, "text.txt")
        with open(TEXT, encoding="utf-8", newline="") as f:
            content = "".join(f.readlines()[:args.lines])
        with open(text, "w", encoding="utf-8", newline="") as f:
            f.write(content)

        # The token ids exactly as our tokenizer makes them, cut in windows as `eval` cuts them.
        ids = json.loads(run(args.cli, "generate", "--model", folder, "--prompt", content, "--greedy", "--max-new-tokens", "1",
                             "--quantization", "none", "--json"))["prompt_ids"]
        windows = [ids[s:s + args.window] for s in range(0, len(ids), args.window) if len(ids[s:s + args.window]) >= 2]

        ours = {}
        for kernel in ("fbgemm", "dequantize"):
            report = json.loads(run(args.cli, "eval", "--model", folder, "--data", text, "--format", "text", "--window", str(args.window),
                                    "--compare", "none,int8", "--int8-kernel", kernel, "--json"))
            assert report["scored_tokens"] == sum(len(w) - 1 for w in windows), "the windows differ from eval's"
            ours[kernel] = report

        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        tensors = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".safetensors"):
                tensors.update(load_file(os.path.join(folder, name)))
        fp32 = GptJ(config).load(tensors).eval()
        reference = logits_of(fp32, windows)
        rows = []
        simulated = [("standard scheme, simulated: per-channel int8 weights, no activation quantization", dict(bits=None)),
                     ("standard scheme, simulated: per-channel int8 weights, per-tensor dynamic 8-bit activations", dict(bits=8)),
                     ("standard scheme, simulated: per-channel int8 weights, per-tensor dynamic 7-bit activations", dict(bits=7)),
                     ("our scheme, simulated: embedding too, per-row 8-bit activations (CPUs with VNNI)", dict(bits=8, per_row=True, embedding=True)),
                     ("our scheme, simulated: embedding too, per-row 7-bit activations (this kernel here)", dict(bits=7, per_row=True, embedding=True))]
        for name, options in simulated:
            logits = logits_of(FakeQuantized(fp32, **options), windows)
            rows.append((name, relative_error(logits, reference), math.exp(nll(logits, windows) - nll(reference, windows)) - 1))
        for name, qconfig in (("per-channel", torch.ao.quantization.per_channel_dynamic_qconfig),
                              ("per-tensor", torch.ao.quantization.default_dynamic_qconfig)):
            quantized = torch.ao.quantization.quantize_dynamic(fp32, {nn.Linear: qconfig}, dtype=torch.qint8)
            logits = logits_of(quantized, windows)
            rows.append((f"PyTorch quantize_dynamic ({engine}), {name} int8 weights, per-tensor dynamic activations",
                         relative_error(logits, reference), math.exp(nll(logits, windows) - nll(reference, windows)) - 1))

    print(f"{folder}: {len(windows)} windows of up to {args.window} tokens, {sum(len(w) - 1 for w in windows)} positions; "
          f"fp32 perplexity: ours {ours['fbgemm']['results'][0]['perplexity']:.4f}, PyTorch {math.exp(nll(reference, windows)):.4f}")
    print(f"{'int8 scheme':<90} {'logits error':>12} {'perplexity':>11}")
    for kernel, report in ours.items():
        c = report["comparisons"][0]
        bits = f", activations per row in {report['fbgemm_activation_bits']} bits" if kernel == "fbgemm" else ", weights only"
        print(f"{'ours, ' + kernel + ' kernel: per-row int8 weights (embedding too)' + bits:<90} "
              f"{c['logits_relative_error']:>12.3e} {c['perplexity_increase'] * 100:>+10.3f}%")
    for name, error, increase in rows:
        print(f"{name:<90} {error:>12.3e} {increase * 100:>+10.3f}%")


if __name__ == "__main__":
    main()
