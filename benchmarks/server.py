"""End-to-end benchmark over the protocol (a command, never a test):

    codegen-lsp bench server [--model PATH] [--file argparse.py] [--keystrokes 200] [--max-new-tokens 16]

1. Keystroke latency. A file of the standard library is opened up to the start of the line holding its
   ~1,500th token; its next characters are typed one keystroke at a time, each a `didChange` followed by a
   `textDocument/inlineCompletion` (automatic trigger) from this client process, which waits for each answer
   (maxNewTokens 16, debounceMs 0). Reported: p50 / p95 from sending the keystroke to reading the answer, the
   first (cold: the whole prompt is computed) separately.
2. Start-up. Time from starting the process to the `initialize` answer, for codegen-lsp and for a bare pygls
   server started the same way (same interpreter, same pipes), alternating, median of `--startup-repeats`.

The model defaults to a CodeGen-350M-shaped checkpoint with random weights
(`benchmarks.common.random_checkpoint`), written once under `--workdir`: the latency depends on its shape,
not its weights.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import percentile
from codegen_lsp.inference.protocol import ModelSpec

__all__ = ["server_benchmark", "add_arguments"]

REPO = Path(__file__).resolve().parent.parent
BARE_PYGLS_SERVER = textwrap.dedent(
    """
    from pygls.lsp.server import LanguageServer

    server = LanguageServer("bare-pygls", "0")
    server.start_io()
    """
)


class Connection:
    """A server process on pipes, with a thread reading its messages (no client library in the timings)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
        self._messages: queue.Queue[tuple[float, dict | None]] = queue.Queue()
        self._ids = iter(range(1, 10**9))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.process.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    self._messages.put((time.perf_counter(), None))
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line == b"\r\n":
                    break
            message = json.loads(out.read(length))
            self._messages.put((time.perf_counter(), message))

    def send(self, message: dict) -> float:
        body = json.dumps(message).encode()
        assert self.process.stdin is not None
        sent = time.perf_counter()
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.process.stdin.flush()
        return sent

    def notify(self, method: str, params: Any) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 600.0) -> tuple[float, float, dict]:
        """(sent, answered, response)."""
        request_id = next(self._ids)
        sent = self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            at, message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                raise RuntimeError(f"the server exited with {self.process.wait()}")
            if "method" in message and "id" in message:  # the server's own requests: accept
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return sent, at, message

    def send_request(self, method: str, params: Any) -> tuple[int, float]:
        """(id, sent) of a request whose answer `collect` waits for: several can be in flight."""
        request_id = next(self._ids)
        return request_id, self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})

    def collect(self, ids: set[int], timeout: float = 600.0) -> dict[int, tuple[float, dict]]:
        """When each of `ids` was answered, and the answer."""
        answers: dict[int, tuple[float, dict]] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(ids):
            at, message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                raise RuntimeError(f"the server exited with {self.process.wait()}")
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif message.get("id") in ids:
                answers[message["id"]] = (at, message)
        return answers

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=60)
            self.notify("exit", None)
            self.process.wait(60)
        except Exception:  # noqa: BLE001 - a benchmark that ends must not leave processes behind
            self.process.kill()
            self.process.wait()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["CODEGEN_LSP_DEBUG"] = "1"  # debugState tells when the model is ready
    return env


def _initialize_params(options: dict | None) -> dict:
    return {
        "processId": os.getpid(),
        "capabilities": {"textDocument": {"inlineCompletion": {}}},
        "initializationOptions": options,
    }


def startup_times(repeats: int, bare_script: Path) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    commands = {
        "ours": [sys.executable, "-m", "codegen_lsp.lsp_server", "--stdio"],
        "bare": [sys.executable, str(bare_script)],
    }
    for _ in range(repeats):
        for name, command in commands.items():
            connection = Connection(command, _env())
            _, answered, _ = connection.request("initialize", _initialize_params(None))
            (ours if name == "ours" else bare).append((answered - connection.started) * 1000)
            connection.close()  # no `initialized`: our worker is never started
    return ours, bare


def cursor_after_tokens(source: str, tokens: int) -> int:
    from codegen_lsp.inference.rules.window import line_start_at_or_after
    from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR, CodeGenTokenizer

    _, offsets = CodeGenTokenizer.from_folder(BUNDLED_TOKENIZER_DIR).encode_with_offsets(source)
    return line_start_at_or_after(source, offsets[min(tokens, len(offsets) - 1)][0])


def position_of(text: str, offset: int) -> dict[str, int]:
    """LSP position (utf-16) of `offset`, for text without "\\r"."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    prefix = text[start:offset]
    return {"line": line, "character": len(prefix.encode("utf-16-le")) // 2}


def keystroke_latencies(args: argparse.Namespace, model: str) -> dict[str, Any]:
    source_path = (
        Path(args.file) if Path(args.file).is_absolute() else Path(sysconfig.get_paths()["stdlib"]) / args.file
    )
    source = source_path.read_text(encoding="utf-8").replace("\r\n", "\n")
    cursor = cursor_after_tokens(source, args.tokens_before)
    typed = source[cursor : cursor + args.keystrokes]
    settings = {
        "model": model,
        "device": args.device,
        "dtype": args.dtype,
        "maxNewTokens": args.max_new_tokens,
        "debounceMs": 0,
        "logLevel": args.log_level,
    }
    connection = Connection([sys.executable, "-m", "codegen_lsp.lsp_server", "--stdio"], _env())
    try:
        connection.request("initialize", _initialize_params(settings))
        connection.notify("initialized", {})
        load_started = time.perf_counter()
        while True:
            _, _, response = connection.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})
            state = response["result"]
            if state["engine"] == "ready":
                break
            if state["engine"] in ("failed", "stopped"):
                raise RuntimeError(f"the model did not load (engine {state['engine']})")
            time.sleep(0.05)
        load_s = time.perf_counter() - load_started
        uri = source_path.resolve().as_uri()
        text = source[:cursor]
        connection.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        latencies, empty = [], 0
        for version, char in enumerate(typed, start=2):
            at = position_of(text, len(text))
            sent = connection.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": char}],
                },
            )
            text += char
            _, answered, response = connection.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": position_of(text, len(text)),
                    "context": {"triggerKind": 2},
                },
            )
            latencies.append((answered - sent) * 1000)
            empty += not response["result"]["items"]
        _, _, response = connection.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})
        stats = response["result"]["stats"]
    finally:
        connection.close()
    warm = latencies[1:] or latencies
    return {
        "file": source_path.name,
        "cursor": cursor,
        "keystrokes": len(typed),
        "load_s": load_s,
        "first_ms": latencies[0],
        "p50_ms": percentile(warm, 0.5),
        "p95_ms": percentile(warm, 0.95),
        "mean_ms": statistics.fmean(warm),
        "empty": empty,
        "typed_through": stats.get("typed_through", 0),
        "engine_requests": stats.get("engine_requests", 0),
    }


def _type_and_ask(connection: Connection, uri: str, text: str, at: int, char: str, version: int) -> tuple[int, float]:
    """One keystroke: `char` inserted at `at` (didChange), then an automatic inline completion right after it."""
    where = position_of(text, at)
    sent = connection.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": where, "end": where}, "text": char}],
    })  # fmt: skip
    after = text[:at] + char + text[at:]
    request_id, _ = connection.send_request("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": position_of(after, at + 1), "context": {"triggerKind": 2},
    })  # fmt: skip
    return request_id, sent


def _started(args: argparse.Namespace, model: str) -> Connection:
    settings = {"model": model, "device": args.device, "dtype": args.dtype, "maxNewTokens": args.max_new_tokens,
                "debounceMs": 0, "logLevel": args.log_level, "cacheSlots": args.cache_slots}  # fmt: skip
    connection = Connection([sys.executable, "-m", "codegen_lsp.lsp_server", "--stdio"], _env())
    connection.request("initialize", _initialize_params(settings))
    connection.notify("initialized", {})
    while _debug_state(connection)["engine"] != "ready":
        time.sleep(0.05)
    return connection


def _debug_state(connection: Connection) -> dict:
    return connection.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})[2]["result"]


def first_suggestion_latencies(args: argparse.Namespace, model: str) -> dict[str, tuple[float, float]]:
    """The whole file is opened; after `reading` seconds the person types one character at the line of token
    ~tokens-before. (open -> first suggestion, first keystroke -> first suggestion) in ms, per reading time."""
    source_path = Path(sysconfig.get_paths()["stdlib"]) / args.file
    source = source_path.read_text(encoding="utf-8").replace("\r\n", "\n")
    cursor = cursor_after_tokens(source, args.tokens_before)
    char = source[cursor]
    connection = _started(args, model)
    results = {}
    try:
        for n, reading in enumerate((0.0, args.read_seconds)):
            uri = source_path.resolve().as_uri() + f"?open={n}"
            opened = connection.notify("textDocument/didOpen", {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": source}})  # fmt: skip
            time.sleep(reading)
            request_id, typed = _type_and_ask(connection, uri, source, cursor, char, 2)
            answered = connection.collect({request_id})[request_id][0]
            results[f"{reading:g} s"] = ((answered - opened) * 1000, (answered - typed) * 1000)
            connection.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    finally:
        connection.close()
    return results


MULTI_FILES = ("argparse.py", "subprocess.py", "typing.py", "inspect.py", "pathlib.py")


def several_documents_latencies(args: argparse.Namespace, model: str, others_ask: bool) -> dict[str, list[float]]:
    """Five files open; each round, a keystroke (and its request) in each of four of them (when `others_ask`;
    else they stay open and quiet: the baseline) and then in the one being typed in, without waiting in between:
    per-document answer times in ms."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    connection = _started(args, model)
    docs = []
    try:
        for name in MULTI_FILES:
            text = (stdlib / name).read_text(encoding="utf-8").replace("\r\n", "\n")
            uri = (stdlib / name).resolve().as_uri()
            connection.notify("textDocument/didOpen", {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})  # fmt: skip
            cursor = cursor_after_tokens(text, args.tokens_before)
            docs.append({"name": name, "uri": uri, "text": text, "cursor": cursor, "version": 1, "ms": []})
        deadline = time.monotonic() + 120  # the opened files are prefilled while "the person reads"
        while _debug_state(connection)["stats"].get("prefills", 0) < len(docs) and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(args.rounds):
            sent = {}
            for doc in docs if others_ask else docs[-1:]:  # the last is typed in: its request is the newest
                doc["version"] += 1
                char = doc["text"][doc["cursor"]]
                request_id, at = _type_and_ask(connection, doc["uri"], doc["text"], doc["cursor"], char, doc["version"])
                doc["text"] = doc["text"][: doc["cursor"]] + char + doc["text"][doc["cursor"] :]
                doc["cursor"] += 1
                sent[request_id] = (doc, at)
            for request_id, (answered, _) in connection.collect(set(sent)).items():
                doc, at = sent[request_id]
                doc["ms"].append((answered - at) * 1000)
    finally:
        connection.close()
    return {doc["name"]: doc["ms"] for doc in docs}


def server_benchmark(args: argparse.Namespace) -> str:
    if args.model:
        model = args.model
    else:
        from benchmarks.common import random_checkpoint

        model = str(random_checkpoint(Path(args.workdir) / "codegen-350M-random"))
    with tempfile.TemporaryDirectory() as folder:
        bare_script = Path(folder) / "bare_pygls_server.py"
        bare_script.write_text(BARE_PYGLS_SERVER)
        ours, bare = startup_times(args.startup_repeats, bare_script)
    typing = keystroke_latencies(args, model)
    first = first_suggestion_latencies(args, model)
    alone = several_documents_latencies(args, model, others_ask=False)[MULTI_FILES[-1]]
    several = several_documents_latencies(args, model, others_ask=True)
    rows = [
        ("keystrokes typed (didChange + inlineCompletion, automatic)", f"{typing['keystrokes']}"),
        ("keystroke-to-answer p50", f"{typing['p50_ms']:.1f} ms"),
        ("keystroke-to-answer p95", f"{typing['p95_ms']:.1f} ms"),
        ("keystroke-to-answer mean", f"{typing['mean_ms']:.1f} ms"),
        ("first completion (cold cache, whole prompt)", f"{typing['first_ms']:.1f} ms"),
        (
            "answered by the worker / typed-through / empty",
            f"{typing['engine_requests']} / {typing['typed_through']} / {typing['empty']}",
        ),
        ("model load (initialized to ready)", f"{typing['load_s']:.1f} s"),
        (
            f"process start to initialize answer, codegen-lsp (median of {len(ours)})",
            f"{statistics.median(ours):.0f} ms",
        ),
        (
            f"process start to initialize answer, bare pygls (median of {len(bare)})",
            f"{statistics.median(bare):.0f} ms",
        ),
    ]
    header = (
        f"codegen-lsp end to end: {typing['file']}, cursor at the line of token ~{args.tokens_before} "
        f"(char {typing['cursor']}), maxNewTokens {args.max_new_tokens}, debounceMs 0, model {model}, "
        f"device {args.device}, dtype {args.dtype}. Latencies exclude the first keystroke."
    )
    for reading, (from_open, from_key) in first.items():
        rows.append(
            (
                f"first suggestion, typing {reading} after opening the whole file: from the open / from the keystroke",
                f"{from_open:.0f} ms / {from_key:.0f} ms",
            )
        )
    table = ["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    typed_in = MULTI_FILES[-1]
    multi = [
        f"Five files open (prefilled), cacheSlots {args.cache_slots}, {args.rounds} rounds of one keystroke in "
        f"each, sent together; the last is the one being typed in ({typed_in}): its request is the newest. Alone: "
        "the same five files open, keystrokes in the typed-in one only.",
        "",
        "| document | p50 (ms) | p95 (ms) |",
        "|---|---|---|",
        f"| {typed_in}, alone | {percentile(alone, 0.5):.0f} | {percentile(alone, 0.95):.0f} |",
        *(
            f"| {name}{' (typed in)' if name == typed_in else ''} | {percentile(ms, 0.5):.0f} | "
            f"{percentile(ms, 0.95):.0f} |"
            for name, ms in several.items()
        ),
        "",
        *typed_in_ratio(alone, several[typed_in]),
    ]
    return "\n".join([header, "", *table, "", *multi])


# About half the keystrokes type the suggestion's next character and are answered by the server alone
# (typed-through: 1-15 ms here), which makes a p50 over all keystrokes jump between the two kinds; the model's
# answers take 150 ms or more on a CPU. So the ratio is also given over the keystrokes the model answered.
MODEL_ANSWER_MS = 50


def typed_in_ratio(alone: list[float], among_five: list[float]) -> list[str]:
    """The typed-in file's latency among five against alone, over all keystrokes and over the model's answers."""
    model_alone = [ms for ms in alone if ms >= MODEL_ANSWER_MS] or alone
    model_five = [ms for ms in among_five if ms >= MODEL_ANSWER_MS] or among_five
    return [
        f"The typed-in file among five: {percentile(among_five, 0.5) / percentile(alone, 0.5):.2f}x its p50 alone, "
        f"{percentile(among_five, 0.95) / percentile(alone, 0.95):.2f}x its p95 (all keystrokes). Over the "
        f"keystrokes the model answered (at least {MODEL_ANSWER_MS} ms; the others were typed-through): "
        f"{len(model_alone)} alone, p50 {percentile(model_alone, 0.5):.0f} ms; {len(model_five)} among five, p50 "
        f"{percentile(model_five, 0.5):.0f} ms: {percentile(model_five, 0.5) / percentile(model_alone, 0.5):.2f}x.",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: a random 350M-shaped one)")
    parser.add_argument("--file", default="argparse.py", help="a file of the standard library, or a path")
    parser.add_argument("--tokens-before", type=int, default=1500)
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--read-seconds", type=float, default=3.0, help="time between opening and typing")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the five-document replay")
    parser.add_argument(
        "--cache-slots", type=int, default=ModelSpec.cache_slots, help="the server's cacheSlots setting"
    )
    parser.add_argument("--log-level", default="warning", help="the server's logLevel (its stderr is dropped)")
    parser.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "codegen-lsp-bench"),
        help="where the random checkpoint is written (once)",
    )
