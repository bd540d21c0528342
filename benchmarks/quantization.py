"""What quantization does to a model's outputs (a command, never a test): logit error and greedy agreement.

    codegen-lsp bench quantization [--shape 350M|2B] [--variants bfloat16,int8,int4:32,int4:64,int4:128,int4:64:head]

The random checkpoint of the shape (the same one the speed benchmarks load) against itself in float32, on the
tokens of a standard-library file: for each variant, the mean and largest |logit - float32 logit| over
`--positions` positions (in units of the float32 logits' standard deviation), how often its top-1 token is
float32's, and greedy agreement: `--greedy` tokens generated after each of 4 prompts, the share of tokens equal to
float32's before the first difference. Random weights are quantization's hard case (no outliers, no redundancy
learnt): the bundled model's held-out loss (scripts/evaluate_bundled_model.py --compare) is the trained case.
Variants: a dtype, or int4:G (groups of G), int4:G:head / int8:head (the head quantized too), int8:nohead.
"""

from __future__ import annotations

import argparse
import gc
import sysconfig
from pathlib import Path

import torch

from benchmarks.common import bench_checkpoint
from codegen_lsp.inference.checkpoint.loading import LoadedModel, load_folder
from codegen_lsp.inference.model.device import cpu_description
from codegen_lsp.inference.model.generate import Sampler, decode_loop, prefill
from codegen_lsp.inference.model.kv_cache import KVCache
from codegen_lsp.inference.model.quantize import WeightFormat


def parse_variant(spec: str) -> tuple[str, WeightFormat | None]:
    dtype, *options = spec.split(":")
    if not options:
        return dtype, None
    group = next((int(o) for o in options if o.isdigit()), WeightFormat(dtype).group)
    head = True if "head" in options else False if "nohead" in options else None
    return dtype, WeightFormat(dtype, group=group, head=head)


@torch.no_grad()
def outputs(loaded: LoadedModel, ids: torch.Tensor, prompts: list[torch.Tensor], greedy: int):
    """(logits (T, V) fp32 over `ids` in one pass, the greedy continuation of each prompt)."""
    logits = loaded.model(ids[None]).float()[0]  # (T, V)
    continuations = []
    for prompt in prompts:
        cache = KVCache(loaded.config, prompt.numel() + greedy + 1, loaded.dtype, loaded.device)
        first = prefill(loaded.model, prompt, 0, cache)
        continuations.append(decode_loop(loaded.model, cache, first, prompt.numel(), greedy, Sampler(), ()).token_ids)
    return logits, continuations


def agreement_before_divergence(a: list[int], b: list[int]) -> float:
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return same / max(len(a), 1)


def quantization_benchmark(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    folder = bench_checkpoint(args)
    source = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text(encoding="utf-8")
    reference = load_folder(folder, "cpu", "float32")
    ids = torch.tensor(reference.tokenizer.encode(source)[: args.positions])
    prompts = [ids[i * (ids.numel() - 64) // 4 :][:64] for i in range(4)]  # 4 prompts of 64 tokens
    expected, expected_greedy = outputs(reference, ids, prompts, args.greedy)
    std = expected.std().item()
    del reference
    gc.collect()
    lines = [
        f"CodeGen-{args.shape} shape, random weights, against float32: logits over {ids.numel()} positions of "
        f"argparse.py (error in units of the float32 logits' std, {std:.3f}); greedy agreement over {args.greedy} "
        f"tokens after 4 prompts. CPU: {cpu_description()}.",
        "",
        "| variant | weights | mean abs logit error (std) | max abs logit error (std) | top-1 = float32's "
        "| greedy tokens equal before the first difference |",
        "|---|---|---|---|---|---|",
    ]
    for spec in args.variants.split(","):
        dtype, form = parse_variant(spec)
        loaded = load_folder(folder, "cpu", dtype, weight_format=form)
        logits, greedy = outputs(loaded, ids, prompts, args.greedy)
        error = (logits - expected).abs()
        top1 = (logits.argmax(-1) == expected.argmax(-1)).float().mean().item()
        agree = sum(agreement_before_divergence(a, b) for a, b in zip(greedy, expected_greedy, strict=True)) / 4
        weights = (form or WeightFormat(dtype)).describe() if dtype in ("int8", "int4") else dtype
        lines.append(
            f"| {spec} | {weights} | {error.mean().item() / std:.3f} | {error.max().item() / std:.2f} | "
            f"{top1:.1%} | {agree:.0%} |"
        )
        print(lines[-1], flush=True)
        del loaded, logits
        gc.collect()
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", default="bfloat16,int8,int4:32,int4:64,int4:128,int4:64:head")
    parser.add_argument("--positions", type=int, default=512)
    parser.add_argument("--greedy", type=int, default=32, help="tokens generated after each prompt")
