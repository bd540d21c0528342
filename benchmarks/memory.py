"""Memory benchmark (a command, never a test): what loading a model and completing once costs in resident memory.

    codegen-lsp bench memory [--shape 350M|2B|6B|16B] [--dtypes float32,bfloat16,int8,int4] [--prompt-tokens N]

Each dtype is measured in a fresh Python process (peak RSS is a high-water mark: it never goes down within a
process): it loads the random checkpoint of the shape (written once under --workdir: the 350M one in float32,
the larger ones in float16, shard by shard), then completes one prompt of about --prompt-tokens tokens with 8 new
tokens, one KV cache slot. Reported: load time, peak RSS after loading and peak RSS after the completion.
transformers is measured beside ours for the float dtypes on the 350M shape (`--transformers` elsewhere: it holds
the whole float model, 26 GB for a 6B in float32).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchmarks.common import bench_checkpoint
from codegen_lsp.inference.model.device import DTYPES, cpu_description

PROBE = """
import resource, sys, time, torch
torch.set_num_threads({threads})
def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
start = time.perf_counter()
prompt = "def f(x):\\n" * max(1, {prompt_tokens} // 5)
if {ours}:
    from codegen_lsp.inference.worker.engine import Engine
    from codegen_lsp.inference.checkpoint.loading import load_folder
    from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
    loaded = load_folder({folder!r}, {device!r}, {dtype!r})
    loaded_s, loaded_gb = time.perf_counter() - start, peak_gb()
    engine = Engine(loaded, cache_slots=1)
    engine.generate(CompletionRequest(1, "d", prompt, GenerationOptions(max_new_tokens=8)))
else:
    from transformers import AutoTokenizer, CodeGenForCausalLM
    model = CodeGenForCausalLM.from_pretrained({folder!r}, dtype=getattr(torch, {dtype!r})).eval().to({device!r})
    loaded_s, loaded_gb = time.perf_counter() - start, peak_gb()
    with torch.inference_mode():
        ids = AutoTokenizer.from_pretrained({folder!r})(prompt, return_tensors="pt").input_ids.to({device!r})
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, pad_token_id=0)
print(loaded_gb, peak_gb(), loaded_s)
"""


def measure(args: argparse.Namespace, folder: str, dtype: str, ours: bool) -> tuple[float, float, float]:
    """(peak RSS after loading in GB, peak RSS after the completion in GB, load seconds) of a fresh process."""
    code = PROBE.format(
        threads=args.threads,
        ours=ours,
        folder=folder,
        device=args.device,
        dtype=dtype,
        prompt_tokens=args.prompt_tokens,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the memory probe failed ({dtype}, {'ours' if ours else 'transformers'}):\n"
                           f"{out.stderr[-2000:]}")  # fmt: skip
    loaded_gb, peak_gb, load_s = (float(x) for x in out.stdout.split()[-3:])
    return loaded_gb, peak_gb, load_s


def memory_benchmark(args: argparse.Namespace) -> str:
    folder = bench_checkpoint(args)
    files = [*folder.glob("*.safetensors")]
    size = sum(f.stat().st_size for f in files)
    transformers = args.transformers if args.transformers is not None else args.shape == "350M"
    lines = [
        f"Peak RSS of a fresh process: load the CodeGen-{args.shape}-shaped checkpoint ({size / 1e9:.2f} GB of "
        f"safetensors in {len(files)} file(s)) on {args.device}, then one completion of a ~{args.prompt_tokens}-token "
        f"prompt (8 new tokens); one KV cache slot for ours. {args.threads} threads; {cpu_description()}.",
        "",
        "| dtype | engine | load (s) | peak RSS after loading (GB) | peak RSS after the completion (GB) |",
        "|---|---|---|---|---|",
    ]
    for dtype in args.dtypes.split(","):
        engines = (True, False) if transformers and dtype in DTYPES else (True,)
        for ours in engines:
            loaded_gb, peak_gb, load_s = measure(args, str(folder), dtype, ours)
            name = "ours" if ours else "transformers"
            lines.append(f"| {dtype} | {name} | {load_s:.1f} | {loaded_gb:.2f} | {peak_gb:.2f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="float32,bfloat16,int8,int4")
    parser.add_argument("--prompt-tokens", type=int, default=1000, help="about this many tokens of prompt")
    parser.add_argument(
        "--transformers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure transformers too (float dtypes; default: on the 350M shape only)",
    )
