"""Typing replay: keystroke-to-completion latency with and without KV-cache reuse, against transformers.

A real file of the standard library; the cursor sits at the start of the line holding its ~1,500th token; the
next characters are typed one keystroke at a time and after each one a completion of `--new-tokens` tokens is
asked for (greedy, no early stop, EOS ignored, so every run does the same work). Compared, in one run:
  ours, reuse on     - our engine, KV cache reused from the longest common token prefix (the product);
  ... no lookup      - the same without prompt-lookup drafts (plain one-token-per-pass decoding);
  ours, reuse off    - our engine recomputing the whole prompt each time (every `--scratch-every`th keystroke);
  transformers       - CodeGenForCausalLM with its own DynamicCache kept across keystrokes and cropped to the
                       common prefix: its best case (in our activation dtype: bfloat16 or float32 for int8 and int4);
  CTranslate2        - (float32 and int8, when installed) generate_batch with the prefix that no keystroke
                       changes as its cached static_prompt: its best case; in a process of its own, so that its
                       thread pool never competes with ours (common.in_fresh_process).
All see the same token window (inference/rules/window.py).
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import time
from pathlib import Path

import torch

from benchmarks.common import bench_checkpoint, ctranslate2_peer, in_fresh_process, percentile
from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.model.device import cpu_description, resolve_dtype
from codegen_lsp.inference.model.generate import Sampler, decode_loop, prefill
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
from codegen_lsp.inference.rules.window import fit_window, line_start_at_or_after
from codegen_lsp.inference.worker.engine import Engine, common_prefix_length

CONTEXT_TOKENS = 1536


def replay_prompts(source: str, encode_with_offsets, tokens_before: int, keystrokes: int) -> list[str]:
    _, offsets = encode_with_offsets(source)
    cursor = line_start_at_or_after(source, offsets[min(tokens_before, len(offsets) - 1)][0])
    return [source[: cursor + k] for k in range(1, keystrokes + 1)]


class TransformersBestCase:
    """transformers' CodeGen with its own cache kept across keystrokes and cropped to the common prefix."""

    def __init__(self, folder: Path, dtype: torch.dtype, device: str) -> None:
        from transformers import CodeGenForCausalLM, DynamicCache

        self.device = device
        self.model = CodeGenForCausalLM.from_pretrained(folder, dtype=dtype).eval().to(device)
        self.cache = DynamicCache(config=self.model.config)
        self.cached: list[int] = []

    @torch.inference_mode()
    def complete(self, prompt_ids: list[int], new_tokens: int) -> tuple[list[int], int]:
        common = min(common_prefix_length(self.cached, prompt_ids), len(prompt_ids) - 1)
        if len(self.cached) > common:
            self.cache.crop(-(len(self.cached) - common))  # transformers 5: a negative count removes tokens
            del self.cached[common:]
        new = torch.tensor([prompt_ids[common:]], device=self.device)
        out = self.model(new, cache=self.cache, use_cache=True, logits_to_keep=1)
        self.cached.extend(prompt_ids[common:])
        generated = [int(out.logits[0, -1].argmax())]
        for _ in range(new_tokens - 1):
            out = self.model(torch.tensor([[generated[-1]]], device=self.device), cache=self.cache, use_cache=True)
            self.cached.append(generated[-1])
            generated.append(int(out.logits[0, -1].argmax()))
        return generated, len(prompt_ids) - common


def time_ours(engine: Engine, prompts: list[str], options: GenerationOptions) -> dict:
    engine.generate(CompletionRequest(0, "bench", prompts[0][:-1], options))  # the file as it was opened
    latencies, computed, hit = [], [], []
    for i, prompt in enumerate(prompts, 1):
        start = time.perf_counter()
        result = engine.generate(CompletionRequest(i, "bench", prompt, options))
        latencies.append(time.perf_counter() - start)
        computed.append(result.timings.tokens_computed)
        hit.append(result.timings.tokens_reused / result.prompt_tokens)
    return {"latencies": latencies, "computed": computed, "hit": hit}


def snippet_prompts(prompts: list[str], source_path: Path, checkpoint: Path, snippet_tokens: int, new_tokens: int):
    """The same keystrokes with snippets of the standard library's other files before the file's text, chosen
    as the server chooses them (lsp_server/workspace: again on a new line): the KV cache must still be reused."""
    from codegen_lsp.lsp_server.pipeline import plan
    from codegen_lsp.lsp_server.settings import parse_settings
    from codegen_lsp.lsp_server.workspace.service import WorkspaceContext

    raw = {"contextTokens": CONTEXT_TOKENS, "contextSnippetTokens": snippet_tokens, "maxNewTokens": new_tokens}
    settings, _ = parse_settings(raw)
    context = WorkspaceContext()
    context.start([source_path.parent], str(checkpoint), None, wait=True)
    uri = source_path.as_uri()
    planned = (plan(prompt, len(prompt), settings, invoked=True) for prompt in prompts)
    return [
        context.plan_with_settings(p, uri, q, len(q), settings).prompt for p, q in zip(planned, prompts, strict=True)
    ]


def time_transformers(hf: TransformersBestCase, prompts: list[str], encode, budget: int, new_tokens: int) -> dict:
    def window(prompt: str) -> list[int]:
        return fit_window(prompt, encode, budget)[0]

    hf.complete(window(prompts[0][:-1]), new_tokens)
    latencies, computed, hit = [], [], []
    for prompt in prompts:
        start = time.perf_counter()
        ids = window(prompt)
        _, n = hf.complete(ids, new_tokens)
        latencies.append(time.perf_counter() - start)
        computed.append(n)
        hit.append(1 - n / len(ids))
    return {"latencies": latencies, "computed": computed, "hit": hit}


def time_ctranslate2(
    folder: Path, dtype: str, threads: int, device: str, opening: list[int], windows: list[list[int]], new_tokens: int
) -> dict | str:
    """In a process of its own (common.in_fresh_process): the token windows of the opened file and of each
    keystroke; the prefix every keystroke's window shares is CTranslate2's static prompt, cached once before
    timing. Or why there is no CTranslate2 row for this dtype."""
    peer = ctranslate2_peer(folder, dtype, threads, device)
    if isinstance(peer, str):
        return peer
    static_len = min(
        min(common_prefix_length(opening, ids) for ids in windows), min(map(len, windows)) - 1, len(opening) - 1
    )
    static = opening[:static_len]
    peer.generate(opening[static_len:], new_tokens, static)  # caches the static prompt's state
    latencies, computed, hit = [], [], []
    for ids in windows:
        start = time.perf_counter()
        peer.generate(ids[static_len:], new_tokens, static)
        latencies.append(time.perf_counter() - start)
        computed.append(len(ids) - static_len)
        hit.append(static_len / len(ids))
    return {"latencies": latencies, "computed": computed, "hit": hit}


def decode_alone(engine: Engine, prompt: str, new_tokens: int, repeats: int = 5) -> float:
    """Seconds to decode `new_tokens` after a prefilled prompt: the floor a keystroke can reach."""
    ids = engine.tokenizer.encode(prompt)[-CONTEXT_TOKENS:]
    slot = engine.slots.get("decode-alone")
    times = []
    for _ in range(repeats):
        logits = prefill(engine.model, torch.tensor(ids, device=engine.loaded.device), 0, slot.cache)
        start = time.perf_counter()
        decode_loop(engine.model, slot.cache, logits, len(ids), new_tokens, Sampler(), eos_ids=())
        times.append(time.perf_counter() - start)
    engine.slots.forget("decode-alone")
    return statistics.median(times)


def typing_benchmark(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    folder = bench_checkpoint(args)
    source_path = Path(sysconfig.get_paths()["stdlib"]) / args.file
    source = source_path.read_text(encoding="utf-8")
    options = GenerationOptions(max_new_tokens=args.new_tokens, context_tokens=CONTEXT_TOKENS)
    lines = [
        f"Typing replay: {source_path.name}, cursor after ~{args.tokens_before} tokens, {args.keystrokes} keystrokes, "
        f"{args.new_tokens} new tokens each (greedy, no early stop), CodeGen-{args.shape} shape (random weights), "
        f"{args.device}, {args.threads} CPU threads. Ours without reuse: every {args.scratch_every}th keystroke. "
        f"CPU: {cpu_description()}.",
        "",
        "| dtype | engine | p50 (s) | p95 (s) | tokens computed / keystroke | cache hit rate |",
        "|---|---|---|---|---|---|",
    ]
    checks = []
    for dtype_arg in args.dtypes.split(","):
        dtype = resolve_dtype(dtype_arg, torch.device(args.device))
        loaded = load_folder(folder, args.device, dtype_arg)
        prompts = replay_prompts(source, loaded.tokenizer.encode_with_offsets, args.tokens_before, args.keystrokes)
        reuse, scratch = Engine(loaded, cache_slots=2), Engine(loaded, cache_slots=1, cache_reuse=False)
        no_lookup = Engine(loaded, cache_slots=1, prompt_lookup=False)
        reuse.eos_ids = scratch.eos_ids = no_lookup.eos_ids = ()
        floor = decode_alone(reuse, prompts[0], args.new_tokens)
        rows = {
            "ours, reuse on": time_ours(reuse, prompts, options),
            "ours, reuse on, no prompt lookup": time_ours(no_lookup, prompts, options),
            "ours, reuse off": time_ours(scratch, prompts[:: args.scratch_every], options),
        }
        if args.snippet_tokens:
            with_snippets = snippet_prompts(prompts, source_path, folder, args.snippet_tokens, args.new_tokens)
            rows["ours, reuse on, snippets of other files"] = time_ours(reuse, with_snippets, options)
        hf = TransformersBestCase(folder, dtype, args.device)
        rows["transformers best case"] = time_transformers(
            hf, prompts, loaded.tokenizer.encode_with_offsets, reuse.budget(options), args.new_tokens
        )
        del hf
        opening, *windows = (
            fit_window(prompt, loaded.tokenizer.encode_with_offsets, reuse.budget(options))[0]
            for prompt in [prompts[0][:-1], *prompts]
        )
        ct2 = in_fresh_process(
            time_ctranslate2, folder, dtype_arg, args.threads, args.device, opening, windows, args.new_tokens
        )
        if not isinstance(ct2, str):
            rows["CTranslate2 best case (static prompt)"] = ct2
        elif ct2 != "—":
            lines.append(f"| {dtype_arg} | CTranslate2 | {ct2} | | | |")
        name = f"{dtype_arg} ({str(dtype).removeprefix('torch.')})" if dtype_arg == "auto" else dtype_arg
        for engine_name, row in rows.items():
            lines.append(
                f"| {name} | {engine_name} | {statistics.median(row['latencies']):.3f} | "
                f"{percentile(row['latencies'], 0.95):.3f} | {statistics.mean(row['computed']):.1f} | "
                f"{statistics.mean(row['hit']):.1%} |"
            )
        ours = statistics.median(rows["ours, reuse on"]["latencies"])
        plain = statistics.median(rows["ours, reuse on, no prompt lookup"]["latencies"])
        off = statistics.median(rows["ours, reuse off"]["latencies"])
        theirs = statistics.median(rows["transformers best case"]["latencies"])
        if "CTranslate2 best case (static prompt)" in rows:
            ct2 = statistics.median(rows["CTranslate2 best case (static prompt)"]["latencies"])
            checks.append(f"- {name}: CTranslate2's best case takes {ct2 / ours:.1f}x our time per keystroke.")
        checks.append(
            f"- {name}: decoding {args.new_tokens} tokens alone takes {floor:.3f} s; a keystroke with reuse takes "
            f"{ours / floor:.2f}x that ({plain / floor:.2f}x without prompt lookup); reuse off is "
            f"{off / ours:.1f}x slower; transformers' best case is {theirs / ours:.1f}x slower "
            f"({theirs / plain:.1f}x than ours without prompt lookup)."
        )
    return "\n".join(lines + [""] + checks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="float32,auto,int8,int4", help="comma-separated; auto = our CPU default")
    parser.add_argument("--file", default="argparse.py", help="a file of the standard library")
    parser.add_argument("--tokens-before", type=int, default=1500)
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--scratch-every", type=int, default=5)
    parser.add_argument(
        "--snippet-tokens", type=int, default=0, help="also type with snippets of other files (contextSnippetTokens)"
    )
