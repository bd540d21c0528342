"""Engine benchmarks, ours against transformers in the same run (commands, never tests).

    codegen-lsp bench engine [--dtypes float32,bfloat16,int8,int4] [--prefill 1024] [--decode 32] [--context 8]
                             [--repeats 3] [--shape 350M|2B|6B] [--alternate]

A CodeGen-350M-shaped model with random weights, written once in the Hub layout; every engine loads that file.
Peers: transformers (float dtypes) and CTranslate2 (float32 and int8, when installed: `pip install '.[bench]'`).
Each engine runs in a fresh process of its own (common.in_fresh_process), one after the other.

Prefill: the forward pass over a `--prefill`-token prompt. Decode: `--decode` tokens after a context of `--context`
tokens whose first C-1 are cached once beforehand (ours: the KV cache; transformers: its DynamicCache, cropped back
after each run; CTranslate2: its cached static prompt): each run is the last context token and the decode steps,
`--decode` forward passes in every engine. At the default context of 8 the cache is small; `--context 1500` is a
typing position, where attention over the cache weighs in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import (
    bench_checkpoint,
    ctranslate2_peer,
    in_fresh_process,
    median_time,
    read_bandwidth_probe,
)
from codegen_lsp.inference.model.device import DTYPES, cpu_description


def ours_runner(folder: Path, dtype: str, prompt: torch.Tensor, context: torch.Tensor, n_decode: int, device: str):
    from benchmarks.quantization import parse_variant
    from codegen_lsp.inference.checkpoint.loading import load_folder
    from codegen_lsp.inference.model.generate import Sampler, decode_loop, prefill
    from codegen_lsp.inference.model.kv_cache import KVCache
    from codegen_lsp.inference.model.quantize import Int8Linear

    base, form = parse_variant(dtype)  # "int4:128:head" and the like: a weight format other than the default
    loaded = load_folder(folder, device, base, weight_format=form)
    print(f"ours, {dtype}: {loaded.kernels}", flush=True)
    model, config = loaded.model, loaded.config
    cache, context_cache = (KVCache(config, config.n_positions, loaded.dtype, loaded.device) for _ in range(2))
    prompt, context = prompt.to(loaded.device), context.to(loaded.device)
    C = context.numel()
    prefill(model, context[:-1], 0, context_cache)

    def run_prefill() -> torch.Tensor:
        return prefill(model, prompt, 0, cache)

    def run_decode() -> None:
        logits = prefill(model, context[-1:], C - 1, context_cache)
        decode_loop(model, context_cache, logits, C, n_decode, Sampler(), eos_ids=())  # n_decode - 1 more passes

    # Bytes of weights one decode step reads: every matrix once (int8 ones are buffers, with their scales, or
    # fbgemm's packed copies, which are not tensors), but only one row of the embedding.
    tensors = dict(model.named_parameters()) | {n: b for n, b in model.named_buffers() if not n.startswith("rotary")}
    read = {name: t for name, t in tensors.items() if name != "wte.weight" or config.tie_word_embeddings}
    packed = sum(m.weight_bytes for m in model.modules() if isinstance(m, Int8Linear) and m.kernel == "fbgemm")
    step_bytes = sum(t.numel() * t.element_size() for t in read.values()) + packed
    return run_prefill, run_decode, step_bytes, lambda: decode_step_breakdown(model, context_cache, C)


def decode_step_breakdown(model, cache, position: int, rounds: int = 30) -> dict[str, float]:
    """Where one decode step's time goes (ms, medians over alternating rounds, one process): the whole step; its
    matrix products alone (the same weights, one padded row each, back to back); the step with every product
    replaced by a stub returning a ready tensor (attention, norms, rotary, cache writes, Python between them)."""
    import statistics
    import time

    from codegen_lsp.inference.model import kernels
    from codegen_lsp.inference.model.generate import decode_one
    from codegen_lsp.inference.model.int4 import Int4Linear
    from codegen_lsp.inference.model.quantize import Int8Linear

    projections = [m for m in model.modules() if isinstance(m, (kernels.Linear, Int8Linear, Int4Linear))]
    rows = [torch.randn(1, p.in_features, dtype=model.dtype) for p in projections]
    token, at = torch.tensor([[5]]), torch.tensor([position])
    ready: dict[tuple, torch.Tensor] = {}

    def stub(self, x: torch.Tensor) -> torch.Tensor:
        key = (*x.shape[:-1], self.out_features)
        return ready.setdefault(key, torch.zeros(key, dtype=x.dtype))

    def step() -> None:
        decode_one(model, token, at, cache)

    def products() -> None:
        for projection, row in zip(projections, rows, strict=True):
            projection(row)

    def stubbed_step() -> None:
        for projection in projections:
            projection.forward = stub.__get__(projection)
        try:
            step()
        finally:
            for projection in projections:
                del projection.forward  # the class's forward again

    times: dict[str, list[float]] = {"step": [], "products": [], "rest": []}
    for _ in range(rounds):
        for name, run in (("step", step), ("products", products), ("rest", stubbed_step)):
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def transformers_runner(
    folder: Path, dtype: str, prompt: torch.Tensor, context: torch.Tensor, n_decode: int, device: str
):
    """transformers' CodeGen, or why it has no column for this dtype."""
    if dtype not in DTYPES:
        return "—"
    from transformers import CodeGenForCausalLM, DynamicCache

    model = CodeGenForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype]).eval().to(device)
    prompt, context = prompt.to(device), context.to(device)
    C = context.numel()
    context_cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(context[None, :-1], cache=context_cache, use_cache=True, logits_to_keep=1)

    @torch.inference_mode()
    def run_prefill() -> None:
        model(prompt[None], cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)

    @torch.inference_mode()
    def run_decode() -> None:
        if (extra := context_cache.get_seq_length() - (C - 1)) > 0:
            context_cache.crop(-extra)  # transformers 5: a negative count removes that many tokens
        token = context[None, -1:]
        for _ in range(n_decode):
            out = model(token, cache=context_cache, use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)

    return run_prefill, run_decode


def ctranslate2_runner(
    folder: Path, dtype: str, prompt: torch.Tensor, context: torch.Tensor, n_decode: int, device: str, threads: int
):
    """CTranslate2's Generator: prefill = the prompt and one generated token; decode = n_decode tokens after the
    context, all of it but its last token being the cached static prompt. Or why it has no column for this dtype."""
    peer = ctranslate2_peer(folder, dtype, threads, device)
    if isinstance(peer, str):
        return peer
    ids, static = prompt.tolist(), context.tolist()
    peer.generate(static[-1:], 1, static[:-1])  # caches the static prompt's state before any timing
    return (lambda: peer.generate(ids, 1)), (lambda: peer.generate(static[-1:], n_decode, static[:-1]))


RUNNERS = {"ours": ours_runner, "transformers": transformers_runner, "CTranslate2": ctranslate2_runner}


def measure_engine(
    name: str,
    folder: Path,
    dtype: str,
    prompt: torch.Tensor,
    context: torch.Tensor,
    n_decode: int,
    device: str,
    threads: int,
    repeats: int,
) -> dict | str:
    """In a process of its own: one engine's prefill seconds and decode tokens/s (medians), or why it has no
    column for this dtype. Ours on the CPU also: the bytes of weights a decode step reads, and the share of the
    memory bandwidth they are read at, each decode run against the bandwidth measured right before it."""
    import statistics
    import time

    torch.set_num_threads(threads)
    runner = RUNNERS[name]
    extra = (threads,) if name == "CTranslate2" else ()
    made = runner(folder, dtype, prompt, context, n_decode, device, *extra)
    if isinstance(made, str):
        return made
    run_prefill, run_decode, *step_bytes_and_breakdown = made
    step_bytes, breakdown = step_bytes_and_breakdown or (None, None)
    measured = {"prefill_s": median_time(run_prefill, repeats, device=device)}
    if step_bytes is None or device != "cpu":  # a peer, or ours on a GPU (no CPU bandwidth to compare with)
        measured["decode_tok_s"] = n_decode / median_time(run_decode, repeats, device=device)
        return measured if step_bytes is None else measured | {"step_bytes": step_bytes}
    probe = read_bandwidth_probe()
    run_decode()  # warm-up
    seconds, bandwidths, shares = [], [], []
    for _ in range(repeats):
        bandwidths.append(probe())
        start = time.perf_counter()
        run_decode()
        seconds.append(time.perf_counter() - start)
        shares.append(step_bytes * n_decode / seconds[-1] / 1e9 / bandwidths[-1])
    return measured | {
        "decode_tok_s": n_decode / statistics.median(seconds),
        "step_bytes": step_bytes,
        "bandwidth": statistics.median(bandwidths),
        "share": statistics.median(shares),
        "breakdown": breakdown(),
    }


def engine_benchmark(args: argparse.Namespace) -> str:
    if args.alternate:
        return alternating_benchmark(args)
    folder = bench_checkpoint(args)
    prompt = torch.randint(0, 50000, (args.prefill,), generator=torch.Generator().manual_seed(0))
    context = torch.randint(0, 50000, (args.context,), generator=torch.Generator().manual_seed(1))
    torch.set_num_threads(args.threads)
    rows, breakdowns = [], []
    for dtype in args.dtypes.split(","):
        prefill_s, decode_tok_s, missing = {}, {}, {}
        for name in RUNNERS:
            measured = in_fresh_process(
                measure_engine,
                name,
                folder,
                dtype,
                prompt,
                context,
                args.decode,
                args.device,
                args.threads,
                args.repeats,
            )
            if isinstance(measured, str):
                missing[name] = measured
                continue
            prefill_s[name], decode_tok_s[name] = measured["prefill_s"], measured["decode_tok_s"]
            if name == "ours":
                ours = measured
        gbs = ours["decode_tok_s"] * ours["step_bytes"] / 1e9
        share = f" ({ours['share']:.0%} of {ours['bandwidth']:.1f})" if "share" in ours else ""
        bandwidth = f"{gbs:.1f} GB/s{share}"
        rows.append((dtype, prefill_s, decode_tok_s, missing, bandwidth))
        if "breakdown" in ours:
            b, gb = ours["breakdown"], ours["step_bytes"] / 1e9
            breakdowns.append(
                f"- {dtype}: a decode step {b['step']:.1f} ms = its matrix products {b['products']:.1f} ms alone "
                f"(reading {gb / b['products'] * 1e3:.1f} GB/s; {b['products'] / b['step']:.0%} of the step) + "
                f"{b['rest']:.1f} ms of everything else with the products stubbed; weights read over the whole "
                f"step: {gb / b['step'] * 1e3:.1f} GB/s"
            )
    peers = ("transformers", "CTranslate2")
    lines = [
        f"CodeGen-{args.shape} shape, random weights, {args.device}, {args.threads} CPU threads, "
        f"prefill {args.prefill} tokens, decode {args.decode} tokens after {args.context} of context, "
        f"median of {args.repeats}; CPU: {cpu_description()}"
        + (
            "; weights read by our decode: bytes per step x tokens/s, and their share of the memory read bandwidth"
            " (a sum over 1.5 GB) measured in the same process right before each decode run (median of the runs'"
            " shares; of the bandwidths)"
            if args.device == "cpu"
            else ""
        ),
        "",
        "| dtype | prefill ours (s) | prefill transformers (s) | prefill CTranslate2 (s) | decode ours (tok/s) "
        "| decode transformers (tok/s) | decode CTranslate2 (tok/s) | decode: ours vs fastest peer "
        "| weights read by our decode |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dtype, prefill_s, decode_tok_s, missing, bw in rows:

        def cell(measured: dict, name: str, fmt: str, missing: dict = missing) -> str:
            return format(measured[name], fmt) if name in measured else missing[name]

        best_peer = max((decode_tok_s[p] for p in peers if p in decode_tok_s), default=None)
        ratio = f"{decode_tok_s['ours'] / best_peer:.2f}x" if best_peer else "—"
        lines.append(
            f"| {dtype} | {prefill_s['ours']:.2f} | {cell(prefill_s, 'transformers', '.2f')} "
            f"| {cell(prefill_s, 'CTranslate2', '.2f')} | {decode_tok_s['ours']:.1f} "
            f"| {cell(decode_tok_s, 'transformers', '.1f')} | {cell(decode_tok_s, 'CTranslate2', '.1f')} "
            f"| {ratio} | {bw} |"
        )
    if breakdowns:
        lines += [
            "",
            f"Where our decode step's time goes (at {args.context} tokens of context; medians of 30 "
            "alternating rounds in one process):",
            *breakdowns,
        ]
    decode = {row[0]: row[2]["ours"] for row in rows}
    prefill = {row[0]: row[1]["ours"] for row in rows}
    pairs = [("int8", "bfloat16"), ("int4", "bfloat16"), ("int4", "int8")]
    ratios = [
        f"Our {a} decode is {decode[a] / decode[b]:.2f}x our {b} decode; its prefill takes "
        f"{prefill[a] / prefill[b]:.2f}x the time of {b}'s."
        for a, b in pairs
        if a in decode and b in decode
    ]
    lines += ["", *ratios] if ratios else []
    return "\n".join(lines)


def alternating_benchmark(args: argparse.Namespace) -> str:
    """Ours only, every dtype loaded in this one process and measured in turn, round after round: ratios that hold
    on a busy machine (a load that comes and goes touches every dtype alike), where separate processes would not."""
    import statistics
    import time

    torch.set_num_threads(args.threads)
    folder = bench_checkpoint(args)
    prompt = torch.randint(0, 50000, (args.prefill,), generator=torch.Generator().manual_seed(0))
    context = torch.randint(0, 50000, (args.context,), generator=torch.Generator().manual_seed(1))
    dtypes = args.dtypes.split(",")
    runs = {dtype: ours_runner(folder, dtype, prompt, context, args.decode, args.device)[:2] for dtype in dtypes}
    times: dict[str, dict[str, list[float]]] = {dtype: {"prefill": [], "decode": []} for dtype in dtypes}
    for dtype in dtypes:  # warm-up: kernel selection, allocator growth
        for run in runs[dtype]:
            run()
    for _ in range(args.repeats):
        for dtype in dtypes:
            for name, run in zip(("prefill", "decode"), runs[dtype], strict=True):
                start = time.perf_counter()
                run()
                times[dtype][name].append(time.perf_counter() - start)
    medians = {d: {k: statistics.median(v) for k, v in t.items()} for d, t in times.items()}
    first = dtypes[0]
    lines = [
        f"Ours, CodeGen-{args.shape} shape (random weights), {args.device}, {args.threads} threads, every dtype in one "
        f"process, alternating, median of {args.repeats} rounds: prefill {args.prefill} tokens; decode {args.decode} "
        f"tokens after {args.context} of context. CPU: {cpu_description()}.",
        "",
        f"| dtype | prefill (s) | decode (tok/s) | prefill time vs {first} | decode speed vs {first} |",
        "|---|---|---|---|---|",
    ]
    for dtype in dtypes:
        m = medians[dtype]
        lines.append(
            f"| {dtype} | {m['prefill']:.2f} | {args.decode / m['decode']:.1f} | "
            f"{m['prefill'] / medians[first]['prefill']:.2f}x | {medians[first]['decode'] / m['decode']:.2f}x |"
        )
    return "\n".join(lines)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="float32,bfloat16,int8")
    parser.add_argument("--prefill", type=int, default=1024)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--context", type=int, default=8, help="tokens before the decoded ones (2 or more)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--alternate", action="store_true", help="ours only, every dtype in one process, alternating: ratios"
    )
