#!/usr/bin/python3
"""Our decode speed next to ONNX Runtime's on the same checkpoint, in one run: batch 1 and 8, int8 and fp32.

    /usr/bin/python3 scripts/compare-ort.py [--model DIR] [--tokens 64] [--repeats 3] [--threads 2] [--our-env K=V] [--json]

/usr/bin/python3 is Debian 13's Python 3.13 (a pyenv `python3` on PATH has no torch). Needs python3-torch,
python3-safetensors, libopenblas0-pthread and `apt-get install -t trixie python3-onnxruntime python3-onnx`. Not in CI.
Without --model it writes the random GPT-J-shaped bench-250m checkpoint (float32, 1 GB) with `paraphrase
make-checkpoint` into a temporary folder.

ONNX Runtime: one decode step of scripts/compare-int8.py's GPT-J (the same safetensors) exported with torch.onnx
(input_ids [B, 1], position_ids, attention_mask [B, past + 1] and each layer's past K/V in; logits and the new K/V out;
batch and past length dynamic), run fp32 and after `quantize_dynamic(per_channel=True, weight_type=QInt8,
op_types_to_quantize=["MatMul"])` (every Linear and lm_head), on the CPU provider (MLAS) with intra_op_num_threads =
--threads and sequential execution; K/V stay ORT values from step to step (I/O binding), greedy argmax in numpy. The
prompt runs through the same step one token at a time, then 3 warm-up steps; both are outside the timing.
Ours, same checkpoint, same run:
- `bench profile --quantization int8|none --batch B --steps N --json`: the step `generate` and the service both run
  (the continuous batcher), after its prefill and 3 warm-up steps, timed without the module hooks that its breakdown uses;
- `generate --greedy` at batch 1 (the user path): its tokens/s exclude loading but include the prompt, so its
  decode rate is N / (time of N + 1 tokens - time of 1 token), the latter the fastest 1-token run of the whole run.
--our-env OMP_WAIT_POLICY=PASSIVE (repeatable) adds rows of ours run with those environment variables.
Each repeat runs every cell once, ORT and ours alternating; the table shows medians (min-max). Load averages at the
start and end tell how busy the machine was.
The bandwidth limit is the weight bytes one token reads (every Linear and lm_head: int8 1 byte per weight plus a
4-byte scale per output channel, fp32 4 bytes; biases and LayerNorms in fp32) over the read bandwidth measured here,
as `bench quant` measures it (the best of five sums of a 1 GiB fp32 tensor, --threads threads), once per repeat.
Checks: ORT fp32 logits of the prompt's last token and of the first decode step against PyTorch (max abs diff), and
ORT fp32 greedy tokens against PyTorch's for the first --check-steps steps.
The bench profile prompt is its own fixed sentence; ORT, PyTorch and `generate` use the same sentence (repeated up to
--prompt-tokens tokens when given).
"""
import argparse
import gc
import importlib.util
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench profile's prompt (src/ParaphraseService.Cli/Benchmarks/StepProfiler.cs).
SENTENCE = "The meeting has been moved to Thursday afternoon, and everyone on the team has been told."
WARM_STEPS = 3

spec = importlib.util.spec_from_file_location("compare_int8", os.path.join(ROOT, "scripts", "compare-int8.py"))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def import_onnxruntime():
    """onnxruntime.quantization imports onnx.reference, which fails on Debian's onnx 1.17 ("every operator has a unique
    name"); dynamic int8 quantization never uses it (only float8 does), so a stub stands in for it. Importing onnx after
    torch prints thousands of harmless "Schema error" lines (its operator schemas registered twice) on the process's
    stderr; they are silenced for the imports only."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        import onnx
        try:
            import onnx.reference  # noqa: F401
        except Exception:  # noqa: BLE001 - the NotImplementedError above, or whatever a later onnx raises
            stub = types.ModuleType("onnx.reference")

            class ReferenceEvaluator:
                def __init__(self, *args, **kwargs):
                    raise RuntimeError("onnx.reference is stubbed out (Debian's onnx 1.17 cannot import it)")

            stub.ReferenceEvaluator = ReferenceEvaluator
            sys.modules["onnx.reference"] = stub
        import onnxruntime
        import onnxruntime.quantization
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return onnx, onnxruntime, onnxruntime.quantization


def cpu_has_vnni():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def cpu_name():
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")


def run(cli, *args, env=None):
    command = shlex.split(cli) + list(args)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done.stdout


# ----------------------------------------------------------------------------- one decode step with a KV cache
class DecodeStep(nn.Module):
    """compare-int8.py's GPT-J, one token per row with past K/V: the same weights and the same math as GptJ.forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        c = model.c
        self.heads, self.rotary, self.embd = c["n_head"], c["rotary_dim"], c["n_embd"]
        # sin/cos repeated element-wise once, so a step only gathers its positions' rows.
        self.register_buffer("sin2", model.sin.repeat_interleave(2, -1), persistent=False)
        self.register_buffer("cos2", model.cos.repeat_interleave(2, -1), persistent=False)

    def forward(self, input_ids, position_ids, attention_mask, *past):
        b = input_ids.shape[0]
        d, r = self.embd // self.heads, self.rotary
        x = self.model.wte(input_ids)  # [B, 1, E]
        sin, cos = self.sin2[position_ids][:, :, None, :], self.cos2[position_ids][:, :, None, :]  # [B, 1, 1, r]
        # 0 where the mask is 1, the dtype's minimum where it is 0 (left padding): [B, 1, 1, past + 1]
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        present = []
        for i, block in enumerate(self.model.h):
            h = block.ln_1(x)
            q, k, v = (p(h).reshape(b, 1, self.heads, d) for p in (block.q_proj, block.k_proj, block.v_proj))

            def rotate(z):  # rotate_every_two on the first rotary_dim dims
                pairs = z[..., :r].reshape(b, 1, self.heads, r // 2, 2)
                swapped = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(b, 1, self.heads, r)
                return torch.cat([z[..., :r] * cos + swapped * sin, z[..., r:]], -1)

            q, k, v = rotate(q).transpose(1, 2), rotate(k).transpose(1, 2), v.transpose(1, 2)  # [B, H, 1, d]
            k = torch.cat([past[2 * i], k], 2)
            v = torch.cat([past[2 * i + 1], v], 2)
            present += [k, v]
            scores = (q @ k.transpose(-1, -2)) / (d ** 0.5) + bias
            a = block.out_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, 1, self.embd))
            x = x + a + block.fc_out(compare.gelu_new(block.fc_in(h)))
        logits = self.model.lm_head(self.model.ln_f(x))[:, 0, :]
        return (logits, *present)


def export(model, path, opset=17):
    step = DecodeStep(model).eval()
    c = model.c
    layers, heads, d = c["n_layer"], c["n_head"], c["n_embd"] // c["n_head"]
    b, past = 2, 3
    past_kv = [torch.zeros(b, heads, past, d) for _ in range(2 * layers)]
    kv_names = [f"past_{kind}.{i}" for i in range(layers) for kind in ("key", "value")]
    out_names = ["logits"] + [f"present_{kind}.{i}" for i in range(layers) for kind in ("key", "value")]
    dynamic = {"input_ids": {0: "batch"}, "position_ids": {0: "batch"}, "attention_mask": {0: "batch", 1: "total"},
               "logits": {0: "batch"}}
    dynamic.update({n: {0: "batch", 2: "past"} for n in kv_names})
    dynamic.update({n: {0: "batch", 2: "total"} for n in out_names[1:]})
    with torch.no_grad():
        torch.onnx.export(step, (torch.zeros(b, 1, dtype=torch.long), torch.full((b, 1), past, dtype=torch.long),
                                 torch.ones(b, past + 1, dtype=torch.long), *past_kv),
                          path, input_names=["input_ids", "position_ids", "attention_mask"] + kv_names,
                          output_names=out_names, dynamic_axes=dynamic, opset_version=opset, dynamo=False)


class OrtDecoder:
    """Greedy decoding over an exported step; K/V stay ORT values between steps (no copies through numpy)."""

    def __init__(self, ort, path, threads, config):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.ort = ort
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.layers, self.heads, self.d = config["n_layer"], config["n_head"], config["n_embd"] // config["n_head"]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def start(self, batch):
        empty = np.zeros((batch, self.heads, 0, self.d), dtype=np.float32)
        self.kv = [self.ort.OrtValue.ortvalue_from_numpy(empty) for _ in range(2 * self.layers)]
        self.position = 0

    def step(self, ids):
        """Feeds one token per row ([B] int64); returns the logits [B, V]."""
        batch = ids.shape[0]
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids.reshape(batch, 1).astype(np.int64))
        binding.bind_cpu_input("position_ids", np.full((batch, 1), self.position, dtype=np.int64))
        binding.bind_cpu_input("attention_mask", np.ones((batch, self.position + 1), dtype=np.int64))
        for i, value in enumerate(self.kv):
            binding.bind_ortvalue_input(f"past_{('key', 'value')[i % 2]}.{i // 2}", value)
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        out = binding.get_outputs()
        self.kv = list(out[1:])
        self.position += 1
        return out[0].numpy()

    def prefill(self, prompt, batch):
        self.start(batch)
        for token in prompt:
            logits = self.step(np.full(batch, token, dtype=np.int64))
        return logits

    def greedy(self, prompt, steps):
        """Batch 1: the prompt's last logits, then `steps` greedy tokens with each step's logits."""
        logits = self.prefill(prompt, 1)
        tokens, all_logits = [], [logits[0]]
        for _ in range(steps):
            tokens.append(int(logits[0].argmax()))
            logits = self.step(np.array([tokens[-1]], dtype=np.int64))
            all_logits.append(logits[0])
        return tokens, all_logits

    def tokens_per_second(self, prompt, batch, steps):
        logits = self.prefill(prompt, batch)
        for _ in range(WARM_STEPS):
            logits = self.step(logits.argmax(-1))
        start = time.perf_counter()
        for _ in range(steps):
            logits = self.step(logits.argmax(-1))
        return batch * steps / (time.perf_counter() - start)


def read_bandwidth():
    """GB/s of summing a 1 GiB fp32 tensor that is not in any cache, best of five (as `bench quant` measures it)."""
    big = torch.ones(256 << 20)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        big.sum().item()
        best = min(best, time.perf_counter() - start)
    return big.numel() * 4 / best / 1e9


def bytes_per_token(folder):
    """Weight bytes one decode step reads, int8 and fp32: every Linear and lm_head (2-D weights but the embedding, of
    which one row is read), their biases and the LayerNorms."""
    int8 = fp32 = 0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(folder, name), "pt") as f:
            for key in f.keys():
                if key.endswith(("wte.weight", "attn.bias", "attn.masked_bias")):
                    continue
                shape = f.get_slice(key).get_shape()
                n = int(np.prod(shape))
                fp32 += 4 * n
                int8 += n + 4 * shape[0] if len(shape) == 2 else 4 * n
    return int8, fp32


def median_range(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a GPT-J folder with safetensors weights (default: bench-250m, written to a temporary folder)")
    parser.add_argument("--cli", default="dotnet run -c Release --project src/ParaphraseService.Cli --")
    parser.add_argument("--tokens", type=int, default=64, help="decode steps timed")
    parser.add_argument("--prompt-tokens", type=int, help="repeat the prompt sentence up to at least this many tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable; default 1 and 8)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every cell; the table shows medians")
    parser.add_argument("--check-steps", type=int, default=8, help="greedy steps compared with PyTorch")
    parser.add_argument("--reduce-range", choices=("auto", "on", "off"), default="auto",
                        help="quantize_dynamic's 7-bit weights; auto: on for CPUs without VNNI")
    parser.add_argument("--our-env", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also time ours with these environment variables (repeatable; each adds rows), e.g. OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--work", help="keep the ONNX files (and the default checkpoint) in this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    batches = args.batch or [1, 8]
    if args.tokens < 1 or args.repeats < 1 or args.threads < 1 or any(b < 1 for b in batches):
        sys.exit("--tokens, --repeats, --threads and --batch must be at least 1")
    try:
        variants = [("", {})] + [(spec, dict(kv.split("=", 1) for kv in spec.split(","))) for spec in args.our_env]
    except ValueError:
        sys.exit("--our-env takes KEY=VALUE pairs separated by commas")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    onnx, ort, quantization = import_onnxruntime()
    vnni = cpu_has_vnni()
    reduce_range = {"auto": not vnni, "on": True, "off": False}[args.reduce_range]
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    log(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")

    temp = tempfile.TemporaryDirectory(prefix="compare-ort-")
    work = args.work or temp.name
    os.makedirs(work, exist_ok=True)
    folder = args.model
    if folder is None:
        folder = os.path.join(work, "bench-250m")
        if not os.path.exists(os.path.join(folder, "config.json")):
            log("writing the bench-250m checkpoint")
            run(args.cli, "make-checkpoint", "--preset", "bench-250m", "--dtype", "float32", "--out", folder)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    int8_bytes, fp32_bytes = bytes_per_token(folder)

    text = SENTENCE
    prompt = json.loads(run(args.cli, "generate", "--model", folder, "--prompt", text, "--greedy", "--max-new-tokens", "1",
                            "--quantization", "none", "--json"))["prompt_ids"]
    if args.prompt_tokens:
        copies = -(-args.prompt_tokens // len(prompt))
        text = " ".join([SENTENCE] * copies)
        prompt = json.loads(run(args.cli, "generate", "--model", folder, "--prompt", text, "--greedy", "--max-new-tokens", "1",
                                "--quantization", "none", "--json"))["prompt_ids"]
    if len(prompt) + WARM_STEPS + args.tokens + 1 > config["n_positions"]:
        sys.exit(f"prompt ({len(prompt)}) + {WARM_STEPS} + {args.tokens} tokens exceed the model's {config['n_positions']} positions")

    # ------------------------------------------------------------------ export, quantize, check against PyTorch
    fp32_path, int8_path = os.path.join(work, "decode-step.onnx"), os.path.join(work, "decode-step-int8.onnx")
    tensors = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), "pt") as f:
                tensors.update({k: f.get_tensor(k) for k in f.keys()})
    model = compare.GptJ(config).load(tensors).eval()
    del tensors
    log("exporting one decode step to ONNX")
    export(model, fp32_path)
    log(f"quantize_dynamic (per-channel QInt8 MatMul weights, reduce_range={reduce_range})")
    logging.disable(logging.WARNING)  # "Please consider to run pre-processing before quantization": for static quantization
    quantization.quantize_dynamic(fp32_path, int8_path, per_channel=True, reduce_range=reduce_range,
                                  weight_type=quantization.QuantType.QInt8, op_types_to_quantize=["MatMul"])
    logging.disable(logging.NOTSET)
    ops = [n.op_type for n in onnx.load(int8_path, load_external_data=False).graph.node]
    int8_matmuls = sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in ops)

    steps = min(args.check_steps, args.tokens)
    with torch.no_grad():
        ids, reference_tokens, reference_logits = list(prompt), [], []
        for _ in range(steps + 1):
            logits = model(torch.tensor([ids]))[0, -1]
            reference_logits.append(logits.numpy())
            reference_tokens.append(int(logits.argmax()))
            ids.append(reference_tokens[-1])
        reference_tokens = reference_tokens[:steps]
    del model
    gc.collect()

    sessions = {"int8": OrtDecoder(ort, int8_path, args.threads, config), "fp32": OrtDecoder(ort, fp32_path, args.threads, config)}
    ort_tokens, ort_logits = sessions["fp32"].greedy(prompt, steps)
    int8_tokens, int8_logits = sessions["int8"].greedy(prompt, steps)
    checks = {
        "prompt_tokens": len(prompt),
        "prompt_logits_max_abs_diff": float(np.abs(ort_logits[0] - reference_logits[0]).max()),
        "first_step_logits_max_abs_diff": float(np.abs(ort_logits[1] - reference_logits[1]).max()),
        "logits_max_abs": float(np.abs(reference_logits[1]).max()),
        "greedy_steps": steps,
        "greedy_tokens_equal": ort_tokens == reference_tokens,
        "greedy_first_difference": next((i for i, (a, b) in enumerate(zip(ort_tokens, reference_tokens)) if a != b), None),
        "ort_int8_logits_relative_error": float(np.linalg.norm(int8_logits[1] - ort_logits[1]) / np.linalg.norm(ort_logits[1])),
        "ort_int8_greedy_agreement": sum(a == b for a, b in zip(int8_tokens, ort_tokens)) / steps,
        "ort_int8_quantized_matmuls": int8_matmuls,
    }
    log(f"checks: {json.dumps(checks)}")

    # ------------------------------------------------------------------ timing, ORT and ours alternating
    cells = {}  # (path, quantization, batch) -> [tokens/s]
    generate_runs = {}  # (variant, quantization) -> {max new tokens: [(tokens, seconds)]}
    bandwidths = []
    names = {"int8": "int8", "fp32": "none"}
    for r in range(args.repeats):
        bandwidths.append(read_bandwidth())
        log(f"repeat {r + 1}/{args.repeats}: read bandwidth {bandwidths[-1]:.1f} GB/s")
        for q in ("int8", "fp32"):
            for b in batches:
                cells.setdefault(("ort", q, b), []).append(sessions[q].tokens_per_second(prompt, b, args.tokens))
                log(f"  ORT {q} batch {b}: {cells[('ort', q, b)][-1]:.1f} tokens/s")
            for spec, env in variants:
                tag = f" {spec}" if spec else ""
                profile = json.loads(run(args.cli, "bench", "profile", "--model", folder, "--quantization", names[q],
                                         *sum((["--batch", str(b)] for b in batches), []), "--steps", str(args.tokens), "--json", env=env))
                for report in profile:
                    cells.setdefault(("profile" + tag, q, report["batch"]), []).append(report["tokens_per_second"])
                    log(f"  ours (bench profile{tag}) {q} batch {report['batch']}: {report['tokens_per_second']:.1f} tokens/s")
                if 1 in batches:
                    runs = generate_runs.setdefault((tag, q), {})
                    for n in (1, args.tokens + 1):
                        out = json.loads(run(args.cli, "generate", "--model", folder, "--prompt", text, "--greedy", "--max-new-tokens", str(n),
                                             "--quantization", names[q], "--json", "--stats", env=env))
                        runs.setdefault(n, []).append((len(out["generated_ids"]), out["stats"]["generate_seconds"]))
                    log(f"  ours (generate{tag}) {q}: 1 token in {runs[1][-1][1]:.3f} s, "
                        f"{runs[args.tokens + 1][-1][0]} in {runs[args.tokens + 1][-1][1]:.3f} s")
    # generate's decode rate: N tokens over (time of N + 1 tokens - the fastest time of 1 token in the run). The
    # fastest is the best estimate of the prompt and first token's own time; one slowed by a busy machine would
    # inflate the rate.
    for (tag, q), runs in generate_runs.items():
        first = min(t for _, t in runs[1])
        for n, t in runs[args.tokens + 1]:
            if n > 1 and t > first:
                cells.setdefault(("generate" + tag, q, 1), []).append((n - 1) / (t - first))
            else:
                log(f"  ours (generate{tag}) {q}: {n} tokens in {t:.3f} s against 1 in {first:.3f} s: no figure")
    load_end = os.getloadavg()
    log(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    temp.cleanup()

    # ------------------------------------------------------------------ report
    bandwidth = statistics.median(bandwidths)
    limits = {"int8": bandwidth * 1e9 / int8_bytes, "fp32": bandwidth * 1e9 / fp32_bytes}
    columns = [(q, b) for b in batches for q in ("int8", "fp32")]
    paths = [("ort", f"ONNX Runtime {ort.__version__} (CPU provider, MLAS)")]
    for spec, _ in variants:
        tag = f" {spec}" if spec else ""
        paths += [("profile" + tag, f"ours, bench profile{tag} (batcher step)"), ("generate" + tag, f"ours, generate{tag} (user path)")]
    result = {
        "model": folder, "config": {k: config[k] for k in ("n_embd", "n_layer", "n_head", "vocab_size")},
        "cpu": cpu_name(), "vnni": vnni, "threads": args.threads, "tokens": args.tokens, "repeats": args.repeats, "our_env": args.our_env,
        "ort_version": ort.__version__, "torch_version": torch.__version__, "reduce_range": reduce_range,
        "load_average_start": load_start, "load_average_end": load_end,
        "read_bandwidth_gbps": median_range(bandwidths),
        "bytes_per_token": {"int8": int8_bytes, "fp32": fp32_bytes},
        "bandwidth_limit_tokens_per_second": limits,
        "checks": checks,
        "tokens_per_second": {p: {f"{q}_b{b}": median_range(cells.get((p, q, b), [])) for q, b in columns} for p, _ in paths},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return

    def cell(p, q, b):
        values = cells.get((p, q, b))
        return f"{statistics.median(values):.1f} ({min(values):.0f}-{max(values):.0f})" if values else "-"

    print(f"{folder}: n_embd {config['n_embd']}, {config['n_layer']} layers; {cpu_name()} ({'VNNI' if vnni else 'no VNNI'}), "
          f"{args.threads} threads; greedy, {len(prompt)} prompt tokens, {args.tokens} decode steps timed, "
          f"median (min-max) of {args.repeats} runs, tokens/s")
    print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f} (1 min)")
    print(f"ORT int8: quantize_dynamic per-channel QInt8, {int8_matmuls} MatMuls quantized, reduce_range={reduce_range}"
          + (" (7-bit weights: without VNNI, MLAS's u8s8 kernel adds pairs of products in 16 bits, which 8-bit weights can overflow)"
             if reduce_range else ""))
    print(f"checks: ORT fp32 vs PyTorch max abs logits diff {checks['prompt_logits_max_abs_diff']:.2e} (prompt), "
          f"{checks['first_step_logits_max_abs_diff']:.2e} (first decode step; logits up to {checks['logits_max_abs']:.1f}); "
          f"greedy tokens equal for {steps} steps: {checks['greedy_tokens_equal']}; "
          f"ORT int8 logits error {checks['ort_int8_logits_relative_error']:.2e} relative L2, greedy agreement {checks['ort_int8_greedy_agreement']:.0%}")
    header = ["path"] + [f"{q} b{b}" for q, b in columns]
    rows = [[label] + [cell(p, q, b) for q, b in columns] for p, label in paths]
    for p, label in paths[1:]:
        ratios = []
        for q, b in columns:
            ours, theirs = cells.get((p, q, b)), cells.get(("ort", q, b))
            ratios.append(f"{statistics.median(ours) / statistics.median(theirs):.2f}x" if ours and theirs else "-")
        rows.append([label.split(" (")[0] + " / ORT"] + ratios)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths]] + rows:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
    print(f"bandwidth limit: read bandwidth {bandwidth:.1f} GB/s (median; {min(bandwidths):.1f}-{max(bandwidths):.1f}); "
          f"weights read per token {int8_bytes / 1e6:.0f} MB int8, {fp32_bytes / 1e6:.0f} MB fp32 -> "
          f"{limits['int8']:.0f} tokens/s int8, {limits['fp32']:.0f} fp32 per stream")
    if 1 in batches:
        shares = [f"{label.split(' (')[0]} {statistics.median(cells[(p, 'int8', 1)]) / limits['int8']:.0%}"
                  for p, label in paths if cells.get((p, "int8", 1))]
        print("int8 batch 1 as a share of the bandwidth limit: " + ", ".join(shares))


if __name__ == "__main__":
    main()
