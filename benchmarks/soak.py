"""Soak: does the server leave anything behind? (a command, never a test)

    codegen-lsp bench soak [--minutes 30] [--model PATH|bundled] [--warmup-minutes 3] [--sample-s 10]
    codegen-lsp bench soak --backend openai [--backend-url URL] [--minutes 10]

A file of the standard library is opened up to the start of the line holding its ~1,500th token; its next
`--burst` characters are typed one keystroke at a time (a `didChange`, then an automatic
`textDocument/inlineCompletion` whose answer is awaited), then the document is put back as it was opened (one
whole-text `didChange`) and the burst starts again, for `--minutes`. The document's size stays bounded, so
memory that grows is memory kept per message. The resident memory (VmRSS) of the server and of its inference
worker is sampled every `--sample-s`; growth is measured from the end of the warm-up (caches filling, the
allocator settling) to the end.

With `--backend openai` the completions come from an OpenAI-compatible server: `--backend-url`, or else a CPU
vLLM started here serving `codegen-lsp export bundled` (`scripts/setup_vllm.sh` installs it; about a minute to
start), with `--model bundled` for the tokenizer. The "worker" row is then that vLLM's process tree.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchmarks.server import Connection, _env, _initialize_params, cursor_after_tokens, position_of

__all__ = ["add_arguments", "soak_benchmark"]


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_pid(server_pid: int) -> int | None:
    """The server's inference worker: its multiprocessing `spawn` child (not the resource tracker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if (
            int(stat.rsplit(")", 1)[1].split()[1]) == server_pid
            and b"spawn_main" in cmdline
            and b"resource_tracker" not in cmdline
        ):
            return int(entry.name)
    return None


def wait_ready(connection: Connection, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, response = connection.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})
        engine = response["result"]["engine"]
        if engine == "ready":
            return
        if engine in ("failed", "stopped"):
            raise RuntimeError(f"the model did not load (engine {engine})")
        time.sleep(0.1)
    raise RuntimeError("the model did not load in time")


def soak(args: argparse.Namespace, model: str) -> dict:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    source_path = Path(args.file) if Path(args.file).is_absolute() else stdlib / args.file
    source = source_path.read_text(encoding="utf-8").replace("\r\n", "\n")
    cursor = cursor_after_tokens(source, args.tokens_before)
    opened, burst = source[:cursor], source[cursor : cursor + args.burst]
    settings = {
        "model": model,
        "device": args.device,
        "maxNewTokens": args.max_new_tokens,
        "debounceMs": 0,
        "logLevel": "warning",
    }
    vllm = None
    if args.backend == "openai":
        url = args.backend_url
        if url is None:
            vllm = start_vllm(Path(args.workdir))
            url = vllm.url
        settings.update(backend="openai", backendUrl=url, model="bundled")
    connection = Connection([sys.executable, "-m", "codegen_lsp.lsp_server", "--stdio"], _env())
    samples: list[tuple[float, int, int, int]] = []  # (seconds, server KiB, worker KiB, keystrokes)
    keystrokes = 0
    try:
        connection.request("initialize", _initialize_params(settings))
        connection.notify("initialized", {})
        wait_ready(connection)
        server_pid = connection.process.pid
        uri = source_path.resolve().as_uri()
        connection.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": opened}}
        )
        version, text = 1, opened
        start = last_sample = time.monotonic()
        end = start + args.minutes * 60
        while True:
            now = time.monotonic()
            if now - last_sample >= args.sample_s or not samples or now >= end:
                if vllm is not None:
                    worker_kb = vllm.rss_bytes() // 1024
                else:
                    worker = worker_pid(server_pid)
                    worker_kb = rss_kb(worker) if worker else 0
                samples.append((now - start, rss_kb(server_pid), worker_kb, keystrokes))
                last_sample = now
            if now >= end:
                break
            if len(text) - len(opened) >= len(burst):  # put the document back as it was opened
                version += 1
                connection.notify(
                    "textDocument/didChange",
                    {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": opened}]},
                )
                text = opened
            char = burst[len(text) - len(opened)]
            at = position_of(text, len(text))
            version += 1
            connection.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": char}],
                },
            )
            text += char
            connection.request(
                "textDocument/inlineCompletion",
                {"textDocument": {"uri": uri}, "position": position_of(text, len(text)), "context": {"triggerKind": 2}},
            )
            keystrokes += 1
    finally:
        connection.close()
        if vllm is not None:
            vllm.stop()
    return {"file": source_path.name, "samples": samples, "keystrokes": keystrokes}


def start_vllm(workdir: Path):
    """A CPU vLLM serving the bundled model's GPT-J export, ready."""
    from benchmarks.vllm_server import VllmServer, export_bundled, vllm_python

    python = vllm_python()
    if python is None:
        raise RuntimeError("no vLLM here: run scripts/setup_vllm.sh, or pass --backend-url")
    workdir.mkdir(parents=True, exist_ok=True)
    export = workdir / "bundled-gptj"
    server = VllmServer(python, export if export.is_dir() else export_bundled(export), workdir / "vllm-soak.log")
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def growth(samples: list[tuple[float, int, int, int]], warmup_s: float, column: int) -> tuple[int, int, float]:
    """(KiB after the warm-up, KiB at the end, growth in %)."""
    after = [s for s in samples if s[0] >= warmup_s] or samples[-1:]
    first, last = after[0][column], samples[-1][column]
    return first, last, (last - first) / first * 100 if first else 0.0


def soak_benchmark(args: argparse.Namespace) -> str:
    if args.backend == "openai":
        model = "bundled"  # the tokenizer of what the vLLM started here serves (or the one --backend-url serves)
    elif args.model:
        model = args.model
    else:
        from benchmarks.common import random_checkpoint

        model = str(random_checkpoint(Path(args.workdir) / "codegen-350M-random"))
    if args.warmup_minutes is None:
        args.warmup_minutes = args.minutes / 10
    result = soak(args, model)
    samples, warmup_s = result["samples"], args.warmup_minutes * 60
    keystrokes_after = result["keystrokes"] - next((s[3] for s in samples if s[0] >= warmup_s), samples[-1][3])
    rows = []
    for name, column in (("server", 1), ("worker", 2)):
        first, last, percent = growth(samples, warmup_s, column)
        per_keystroke = (last - first) * 1024 / keystrokes_after if keystrokes_after else 0.0
        rows.append(
            f"| {name} | {samples[0][column] / 1024:.1f} MiB | {first / 1024:.1f} MiB | "
            f"{last / 1024:.1f} MiB | {percent:+.2f} % | {per_keystroke:+.0f} B |"
        )
    header = (
        f"codegen-lsp soak: {args.minutes:g} min of typing replay ({result['file']}, bursts of {args.burst} "
        f"keystrokes, each a didChange + an awaited inlineCompletion, then the document put back), "
        f"{result['keystrokes']} keystrokes ({keystrokes_after} after a {args.warmup_minutes:g} min warm-up), "
        f"model {model}, device {args.device}"
        + (
            f", backend openai ({'a CPU vLLM' if args.backend_url is None else 'a server'}; worker: its processes)"
            if args.backend == "openai"
            else ""
        )
        + ". Resident memory (VmRSS)."
    )
    table = [
        "| process | at start | after warm-up | at end | growth after warm-up | per keystroke |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    trace = [
        "",
        "| minute | server MiB | worker MiB | keystrokes |",
        "|---|---|---|---|",
        *(f"| {t / 60:.1f} | {s / 1024:.1f} | {w / 1024:.1f} | {k} |" for t, s, w, k in samples),
    ]
    return "\n".join([header, "", *table, *(trace if args.trace else [])])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--warmup-minutes", type=float, default=None, help="growth is measured after this (default: a tenth of the run)"
    )
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument(
        "--model", default=None, help="model folder, Hub id or 'bundled' (default: a random 350M-shaped one)"
    )
    parser.add_argument("--file", default="argparse.py", help="a file of the standard library, or a path")
    parser.add_argument("--tokens-before", type=int, default=1500)
    parser.add_argument("--burst", type=int, default=200, help="keystrokes typed before the document is put back")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--trace", action="store_true", help="also print every sample")
    parser.add_argument("--backend", default="local", choices=("local", "openai"))
    parser.add_argument(
        "--backend-url", default=None, help="with --backend openai: the API base (default: start a CPU vLLM here)"
    )
    parser.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "codegen-lsp-bench"),
        help="where the random checkpoint is written (once)",
    )
