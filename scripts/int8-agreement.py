#!/usr/bin/python3
"""Top-1 agreement, logits error and loss of our int8 scheme against fp32 on the demo model's held-out text, computed
exactly in fp32 (fake quantization) for 7-bit activations (what fbgemm runs on CPUs without VNNI), 8-bit ones (CPUs
with VNNI) and int8 weights alone (the dequantize kernel): the 8-bit figure cannot be measured with the kernel on a
CPU without VNNI.

    /usr/bin/python3 scripts/int8-agreement.py

Debian 13's python3-torch, python3-safetensors and python3-regex. The model is scripts/compare-int8.py's GPT-J, the
tokenizer tests/fixtures/make_demo_model.py's; windows of 512 tokens as `paraphrase eval` cuts them.
"""
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import make_demo_model as demo  # noqa: E402

spec = importlib.util.spec_from_file_location("compare_int8", os.path.join(ROOT, "scripts", "compare-int8.py"))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def main():
    torch.set_num_threads(1)
    folder = demo.MODEL_OUT
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    model = compare.GptJ(config).load(load_file(os.path.join(folder, "model.safetensors"))).eval()
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
        merges = [tuple(vocab[p] for p in line.split(" ")) for line in f.read().split("\n")[1:] if line]
    tokenizer = demo.Tokenizer(merges)
    with open(os.path.join(demo.DATA_OUT, "heldout.txt"), encoding="utf-8") as f:
        ids = tokenizer.encode(f.read())
    window = config["n_positions"]
    windows = [ids[s:s + window] for s in range(0, len(ids), window) if len(ids[s:s + window]) >= 2]
    reference = compare.logits_of(model, windows)
    predicted = sum(len(w) - 1 for w in windows)
    print(f"fp32: loss {compare.nll(reference, windows):.5f} over {predicted} tokens")
    for name, quantized in [
        ("per-row 7-bit activations (fbgemm without VNNI)", compare.FakeQuantized(model, 7, per_row=True, embedding=True)),
        ("per-row 8-bit activations (fbgemm with VNNI)", compare.FakeQuantized(model, 8, per_row=True, embedding=True)),
        ("int8 weights only (dequantize kernel)", compare.FakeQuantized(model, None, embedding=True)),
    ]:
        logits = compare.logits_of(quantized, windows)
        agree = sum((a.argmax(-1) == b.argmax(-1)).sum().item() for a, b in zip(logits, reference)) / predicted
        print(f"{name}: top-1 agreement {agree:.4%}, logits error {compare.relative_error(logits, reference):.3e}, "
              f"loss {compare.nll(logits, windows):.5f}")


if __name__ == "__main__":
    main()
