"""`codegen-lsp doctor`: is this machine set up to complete code, and if not, why. One line per fact, each
`OK`, `WARN` or `FAIL`, so that editors can show them as they are (Neovim's :checkhealth, Emacs'
codegen-lsp-diagnose, VS Code's health check); `--json` gives the same as data. Exit 0 when usable, 1 when not.

A process of its own, as `complete` is: the checks that need torch import it here, never in the server.
Every remote call is bounded: the remote backend is asked through the server's own adapter (its time-out and
byte limits), and the Hub is never asked (only its cache is read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from codegen_lsp.inference.checkpoint.hub import BUNDLED, BUNDLED_MODEL_DIR, looks_like_path
from codegen_lsp.lsp_server.settings import Settings

__all__ = ["Check", "Level", "checks", "render", "usable"]

CPU_WHEEL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
SPEED_PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'
SPEED_TOKENS = 16
SLOW_TOKENS_PER_S = 5.0  # below this a suggestion of a few lines takes many seconds


class Level(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    level: Level
    topic: str
    message: str

    def line(self) -> str:
        return f"{self.level.value} {self.topic}: {self.message}"


def usable(found: list[Check]) -> bool:
    return not any(c.level == Level.FAIL for c in found)


def render(found: list[Check]) -> str:
    lines = [c.line() for c in found]
    failed = [c for c in found if c.level == Level.FAIL]
    if failed:
        lines.append(f"codegen-lsp doctor: not usable: {failed[0].topic}: {failed[0].message}")
    else:
        lines.append("codegen-lsp doctor: usable")
    return "\n".join(lines)


def as_json(found: list[Check]) -> str:
    checks = [asdict(c) | {"level": c.level.value} for c in found]
    return json.dumps({"usable": usable(found), "checks": checks}, indent=2)


def checks(settings: Settings, speed_test: bool = True) -> list[Check]:
    """Every check, in the order a person reads them: the interpreter, torch, where and how the model runs,
    where it comes from, and whether it answers (or the remote server does)."""
    from codegen_lsp.lsp_server.cli import version

    found = [
        Check(Level.OK, "codegen-lsp", f"{version()} ({Path(__file__).resolve().parent.parent})"),
        Check(Level.OK, "python", f"{platform.python_version()} ({sys.executable})"),
    ]
    if settings.backend.backend == "openai":
        found += _model_source(settings, weights=False)
        if usable(found):
            found += _remote(settings)
        return found
    torch_checks = _torch()
    found += torch_checks
    if not usable(torch_checks):
        return found
    device_checks = _device_and_dtype(settings)
    found += device_checks
    found += _converted_cache()
    source = _model_source(settings, weights=True)
    found += source
    if speed_test and usable(device_checks) and usable(source):
        if any(c.topic == "model" and "downloaded on first use" in c.message for c in source):
            found.append(Check(Level.WARN, "speed", "skipped: the model is not downloaded yet"))
        else:
            found += _speed(settings)
    return found


# -- torch ---------------------------------------------------------------------------------------------------


def _torch() -> list[Check]:
    try:
        import torch
    except ImportError as error:
        return [Check(Level.FAIL, "torch", f"not installed ({error}); a CPU-only machine: {CPU_WHEEL}")]
    cuda = torch.version.cuda
    build = f"CUDA {cuda} build" if cuda else "ROCm build" if getattr(torch.version, "hip", None) else "CPU build"
    found = [Check(Level.OK, "torch", f"{torch.__version__} ({build}, {torch.get_num_threads()} threads)")]
    if cuda and not torch.cuda.is_available():
        found.append(
            Check(
                Level.WARN,
                "torch",
                f"a CUDA build on a machine where it sees no GPU: the CPU wheel is far smaller ({CPU_WHEEL})",
            )
        )
    return found


def _device_and_dtype(settings: Settings) -> list[Check]:
    import torch

    from codegen_lsp.inference.errors import ModelLoadError
    from codegen_lsp.inference.model.device import (
        cpu_has_fast_bf16,
        cpu_has_vnni,
        cpu_info,
        dtype_advice,
        dtype_name,
        resolve_device,
        resolve_dtype,
        resolve_quantization,
    )

    asked_device, asked_dtype = settings.model.device, settings.model.dtype
    try:
        device = resolve_device(asked_device)
    except ModelLoadError as error:
        return [Check(Level.FAIL, "device", error.message)]
    if device.type == "cuda":
        why = f"GPU {torch.cuda.get_device_name(device)}"
        why += ": auto picks CUDA when torch sees a GPU" if asked_device == "auto" else " (device setting)"
    elif asked_device == "auto":
        why = "auto: torch sees no CUDA GPU"
    else:
        why = "the device setting"
    found = [Check(Level.OK, "device", f"{device}; {why}")]
    try:
        dtype = resolve_dtype(asked_dtype, device)
    except ModelLoadError as error:
        return [*found, Check(Level.FAIL, "dtype", error.message)]
    bf16, vnni = cpu_has_fast_bf16(), cpu_has_vnni()
    if asked_dtype == "auto" and device.type == "cuda":
        why = "auto on CUDA"
    elif asked_dtype == "auto":
        why = (
            "auto: this CPU runs bf16 natively (AVX512-BF16 or AMX, oneDNN)"
            if bf16
            else "auto: this CPU has no native bf16 (AVX512-BF16 or AMX), where emulated bf16 is slower"
        )
    else:
        why = "the dtype setting"
    name = dtype_name(dtype)
    quantized = resolve_quantization(asked_dtype)
    if quantized:
        name = f"{quantized} weights, {name} activations"
    found.append(Check(Level.OK, "dtype", f"{asked_dtype} -> {name}; {why}"))
    if device.type == "cpu":
        cpu = platform.processor() or platform.machine()
        features = f"native bf16 {'yes' if bf16 else 'no'}, int8 VNNI {'yes' if vnni else 'no'}"
        found.append(Check(Level.OK, "cpu", f"{cpu}, {os.cpu_count()} cores; {features}"))
        if quantized == "int8" and not vnni:
            found.append(Check(Level.WARN, "dtype", "int8 without VNNI: fbgemm's int8 products are slower here"))
        if asked_dtype == "auto" and (advice := dtype_advice(cpu_info()[1])):
            found.append(Check(Level.OK, "dtype advice", advice))
    return found


def _converted_cache() -> list[Check]:
    from codegen_lsp.inference.checkpoint.weights import cache_dir

    folder = cache_dir() / "converted"
    if not folder.is_dir():
        return [Check(Level.OK, "converted weights", f"{folder}: empty (filled when a .bin checkpoint is converted)")]
    entries = [p for p in folder.iterdir() if p.is_dir()]
    size = sum(f.stat().st_size for p in entries for f in p.iterdir() if f.is_file())
    level = Level.OK if os.access(folder, os.W_OK) else Level.WARN
    writable = "" if level == Level.OK else "; not writable"
    return [Check(level, "converted weights", f"{folder}: {len(entries)} model(s), {size / 1e6:.0f} MB{writable}")]


# -- the model -----------------------------------------------------------------------------------------------


def _model_source(settings: Settings, weights: bool) -> list[Check]:
    """Where the model's files come from; the Hub is not asked (its cache is read)."""
    model, revision = settings.model.model, settings.model.revision
    what = "the model" if weights else "the tokenizer of the model"
    if model == BUNDLED:
        if not (BUNDLED_MODEL_DIR / "config.json").is_file():
            return [Check(Level.FAIL, "model", f"the bundled model is missing from {BUNDLED_MODEL_DIR}")]
        return [Check(Level.OK, "model", f"bundled: {BUNDLED_MODEL_DIR} (trained on Python's standard library)")]
    if looks_like_path(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            return [Check(Level.FAIL, "model", f"model folder {folder} does not exist (the model setting)")]
        if not (folder / "config.json").is_file():
            return [Check(Level.FAIL, "model", f"model folder {folder} has no config.json")]
        return [Check(Level.OK, "model", f"local folder {folder}")]
    cached = _hub_cache(model, revision, weights)
    if cached is not None:
        return [Check(Level.OK, "model", f"{model} from the Hugging Face cache: {cached}")]
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        if not weights:
            return [Check(Level.FAIL, "model", f"{model} is not cached and HF_HUB_OFFLINE is set: no tokenizer")]
        return [
            Check(
                Level.WARN,
                "model",
                f"{model} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                "the bundled model stands in (weaker completions)",
            )
        ]
    return [Check(Level.WARN, "model", f"{what} {model} is not cached: downloaded on first use from the Hub")]


def _hub_cache(model: str, revision: str | None, weights: bool) -> str | None:
    from huggingface_hub import snapshot_download

    from codegen_lsp.inference.checkpoint.hub import CONFIG_AND_TOKENIZER, has_weights

    try:
        folder = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or not a Hub id): the caller says so
        return None
    if not (folder / "config.json").is_file() or not any((folder / n).is_file() for n in CONFIG_AND_TOKENIZER[1:]):
        return None
    return str(folder) if not weights or has_weights(folder) else None


def _speed(settings: Settings) -> list[Check]:
    """Load the model as the worker does and time one 16-token completion (greedy, no early stop)."""
    from codegen_lsp.inference.checkpoint.loading import load
    from codegen_lsp.inference.errors import ModelLoadError
    from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
    from codegen_lsp.inference.worker.engine import Engine

    spec = settings.model_spec()
    try:
        loaded = load(spec)
    except ModelLoadError as error:
        return [Check(Level.FAIL, "load", error.message)]
    found = [
        Check(
            Level.OK,
            "load",
            f"{loaded.folder} on {loaded.device} ({loaded.dtype_name}) in {loaded.load_ms / 1000:.1f} s",
        )
    ]
    if loaded.warning:
        found.append(Check(Level.WARN, "load", loaded.warning))
    engine = Engine(loaded, cache_slots=1, cache_reuse=False, prompt_lookup=False)
    engine.warm_up()
    options = GenerationOptions(max_new_tokens=SPEED_TOKENS, context_tokens=256)
    start = time.perf_counter()
    result = engine.generate(CompletionRequest(0, "codegen-lsp://doctor", SPEED_PROMPT, options))
    seconds = time.perf_counter() - start
    tokens = len(result.candidates[0].token_ids) if result.candidates else 0
    rate = tokens / seconds if seconds > 0 else 0.0
    level = Level.OK if rate >= SLOW_TOKENS_PER_S else Level.WARN
    slow = "" if level == Level.OK else f"; slow: a 3-line suggestion (~40 tokens) takes ~{40 / max(rate, 0.1):.0f} s"
    found.append(Check(level, "speed", f"{tokens} tokens in {seconds * 1000:.0f} ms: {rate:.1f} tokens/s{slow}"))
    return found


# -- the remote backend --------------------------------------------------------------------------------------


def _remote(settings: Settings) -> list[Check]:
    """Ask the server through the server's own adapter: bounded by backendTimeoutMs and its byte limits."""
    from codegen_lsp.lsp_server.backends import BackendError
    from codegen_lsp.lsp_server.backends.openai import OpenAIBackend, load_model_files
    from codegen_lsp.lsp_server.backends.openai_http import redact

    remote = settings.remote_spec()
    shown = redact(remote.url)  # no password from the URL
    try:
        files = load_model_files(settings.model.model, settings.model.revision)
    except BackendError as error:
        return [Check(Level.FAIL, "tokenizer", error.message)]
    said: list[tuple[str, str]] = []

    async def ask() -> Any:
        backend = OpenAIBackend(remote, files, on_status=lambda kind, message: said.append((kind, message)))
        try:
            await asyncio.wait_for(backend.start(), remote.timeout_ms / 1000 * 3 + 5)
        except asyncio.TimeoutError:
            said.append(("down", f"{shown} did not answer in time"))
        finally:
            await backend.stop()
        return backend

    backend = asyncio.run(ask())
    if backend.served_model is not None and not said:
        return [Check(Level.OK, "remote", f"{shown} answers and serves {backend.served_model}")]
    message = said[0][1] if said else f"{shown} is not ready"
    return [Check(Level.FAIL, "remote", message.split("; completions resume")[0])]


# -- the command ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from codegen_lsp.inference.protocol import DTYPE_CHOICES

    parser.add_argument("--model", default=None, help="Hub id, local folder or `bundled` (default: the setting)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs (setting device)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, help="weights and activations (setting dtype)")
    parser.add_argument(
        "--settings", default=None, help="settings as JSON, the way a client sends them (camelCase names)"
    )
    parser.add_argument("--no-speed-test", action="store_true", help="skip loading the model and timing it")
    parser.add_argument("--json", action="store_true", help="the checks as JSON: {usable, checks: [...]}")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when usable, 1 when not (the reason on the last line), 2 for unusable arguments."""
    from codegen_lsp.lsp_server.settings import parse_settings

    raw: Any = {}
    if args.settings:
        try:
            raw = json.loads(args.settings)
        except ValueError as error:
            print(f"codegen-lsp doctor: error: --settings is not JSON: {error}", file=sys.stderr)
            return 2
        if not isinstance(raw, dict):
            print("codegen-lsp doctor: error: --settings must be a JSON object", file=sys.stderr)
            return 2
    raw = dict(raw.get("codegenLsp", raw))
    for key, value in (("model", args.model), ("device", args.device), ("dtype", args.dtype)):
        if value is not None:
            raw[key] = value
    settings, warnings = parse_settings(raw)
    found = [Check(Level.WARN, "settings", warning) for warning in warnings]
    found += checks(settings, speed_test=not args.no_speed_test)
    print(as_json(found) if args.json else render(found), flush=True)
    return 0 if usable(found) else 1
