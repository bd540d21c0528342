"""Engine benchmarks, ours against transformers in the same run (commands, never tests).

    codegen-lsp bench engine [--dtypes float32,bfloat16] [--prefill 1024] [--decode 32] [--repeats 3]
    codegen-lsp bench memory [--dtypes float32,bfloat16]

A CodeGen-350M-shaped model with random weights, written once in the Hub layout; both engines load that file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import measure_read_bandwidth, median_time, random_checkpoint
from codegen_lsp.inference.device import DTYPES


def ours_runner(folder: Path, dtype: str, prompt: torch.Tensor, n_decode: int, device: str):
    from codegen_lsp.inference.generate import Sampler, decode_loop, prefill
    from codegen_lsp.inference.kv_cache import KVCache
    from codegen_lsp.inference.loading import load_folder

    loaded = load_folder(folder, device, dtype)
    model, config = loaded.model, loaded.config
    cache = KVCache(config, config.n_positions, loaded.dtype, loaded.device)
    prompt = prompt.to(loaded.device)

    def run_prefill() -> torch.Tensor:
        return prefill(model, prompt, 0, cache)

    def run_decode() -> None:
        logits = run_prefill_short()
        decode_loop(model, cache, logits, 8, n_decode, Sampler(), eos_ids=())

    def run_prefill_short() -> torch.Tensor:
        return prefill(model, prompt[:8], 0, cache)

    # Bytes of weights one decode step reads: every matrix once, but only one row of the embedding.
    read = {name: p for name, p in model.named_parameters() if name != "wte.weight" or config.tie_word_embeddings}
    step_bytes = sum(p.numel() * p.element_size() for p in read.values())
    return run_prefill, run_decode, step_bytes


def transformers_runner(folder: Path, dtype: str, prompt: torch.Tensor, n_decode: int, device: str):
    from transformers import CodeGenForCausalLM, DynamicCache

    model = CodeGenForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype]).eval().to(device)
    prompt = prompt.to(device)

    @torch.inference_mode()
    def run_prefill() -> None:
        model(prompt[None], cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)

    @torch.inference_mode()
    def run_decode() -> None:
        out = model(prompt[None, :8], cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
        cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(n_decode - 1):
            out = model(token, cache=cache, use_cache=True)
            cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)

    return run_prefill, run_decode


def engine_benchmark(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    folder = random_checkpoint(Path(args.workdir) / "codegen-350M-random")
    prompt = torch.randint(0, 50000, (args.prefill,), generator=torch.Generator().manual_seed(0))
    ceiling = measure_read_bandwidth() if args.device == "cpu" else None
    rows = []
    for dtype in args.dtypes.split(","):
        ours_prefill, ours_decode, param_bytes = ours_runner(folder, dtype, prompt, args.decode, args.device)
        ref_prefill, ref_decode = transformers_runner(folder, dtype, prompt, args.decode, args.device)
        # Prefill and decode of both engines alternate, so drift on a shared machine hits both alike.
        results = {}
        for name, fn in (("ours prefill", ours_prefill), ("hf prefill", ref_prefill),
                         ("ours decode", ours_decode), ("hf decode", ref_decode)):
            results[name] = median_time(fn, args.repeats, device=args.device)
        # both decodes include the same 8-token prefill that seeds them (small next to 31 decode steps)
        ours_tok_s = args.decode / results["ours decode"]
        hf_tok_s = args.decode / results["hf decode"]
        gbs = ours_tok_s * param_bytes / 1e9
        bandwidth = f"{gbs:.1f} GB/s" + (f" ({gbs / ceiling:.0%} of {ceiling:.1f})" if ceiling else "")
        rows.append((dtype, results["ours prefill"], results["hf prefill"], ours_tok_s, hf_tok_s, bandwidth))
        del ours_prefill, ours_decode, ref_prefill, ref_decode
    lines = [
        f"CodeGen-350M shape, random weights, {args.device}, {args.threads} CPU threads, "
        f"prefill {args.prefill} tokens, decode {args.decode} tokens, median of {args.repeats}"
        + (f"; memory read bandwidth (sum over 1.5 GB): {ceiling:.1f} GB/s" if ceiling else ""),
        "",
        "| dtype | prefill ours (s) | prefill transformers (s) | prefill speed-up | decode ours (tok/s) "
        "| decode transformers (tok/s) | decode speed-up | weights read by our decode |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dtype, ours_p, hf_p, ours_d, hf_d, bw in rows:
        lines.append(f"| {dtype} | {ours_p:.2f} | {hf_p:.2f} | {hf_p / ours_p:.2f}x | {ours_d:.1f} | {hf_d:.1f} "
                     f"| {ours_d / hf_d:.2f}x | {bw} |")
    return "\n".join(lines)


MEMORY_PROBE = """
import resource, sys, time, torch
torch.set_num_threads({threads})
start = time.perf_counter()
if {ours}:
    from codegen_lsp.inference.engine import Engine
    from codegen_lsp.inference.loading import load_folder
    from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
    engine = Engine(load_folder({folder!r}, {device!r}, {dtype!r}), cache_slots=1)
    loaded_s = time.perf_counter() - start
    engine.generate(CompletionRequest(1, "d", "def f(x):\\n" * 200, GenerationOptions(max_new_tokens=8)))
else:
    from transformers import CodeGenForCausalLM, DynamicCache
    model = CodeGenForCausalLM.from_pretrained({folder!r}, dtype=getattr(torch, {dtype!r})).eval().to({device!r})
    loaded_s = time.perf_counter() - start
    with torch.inference_mode():
        ids = torch.randint(0, 50000, (1, 1000), device={device!r})
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, pad_token_id=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, loaded_s)
"""


def memory_benchmark(args: argparse.Namespace) -> str:
    """Peak resident memory of a fresh process that loads the model and completes ~1000 tokens."""
    import subprocess
    import sys

    folder = random_checkpoint(Path(args.workdir) / "codegen-350M-random")
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    lines = [
        f"Peak RSS of a fresh process: load the CodeGen-350M-shaped checkpoint ({size / 1e9:.2f} GB of fp32 "
        f"safetensors) on {args.device}, then one completion of a ~1000-token prompt; one KV cache slot for ours.",
        "",
        "| dtype | ours: peak RSS (GB) | transformers: peak RSS (GB) | ratio | ours: load (s) "
        "| transformers: load (s) |",
        "|---|---|---|---|---|---|",
    ]
    for dtype in args.dtypes.split(","):
        measured = {}
        for ours in (True, False):
            code = MEMORY_PROBE.format(threads=args.threads, ours=ours, folder=str(folder), device=args.device,
                                       dtype=dtype)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"the memory probe failed:\n{out.stderr[-2000:]}")
            rss, load_s = out.stdout.split()[-2:]
            measured[ours] = (int(rss) / 1e9, float(load_s))
        (ours_rss, ours_load), (hf_rss, hf_load) = measured[True], measured[False]
        lines.append(f"| {dtype} | {ours_rss:.2f} | {hf_rss:.2f} | {ours_rss / hf_rss:.2f}x | {ours_load:.1f} "
                     f"| {hf_load:.1f} |")
    return "\n".join(lines)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--prefill", type=int, default=1024)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="float32,bfloat16")
