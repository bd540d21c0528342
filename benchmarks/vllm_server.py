"""A real vLLM (the CPU build, in its own venv from scripts/setup_vllm.sh) serving a `codegen-lsp export` on
127.0.0.1, for the tests (once per module: it takes a minute to start on two cores) and `bench remote`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 420


def vllm_python() -> str | None:
    """The venv's python (installing it once), or None when the tests are told to skip vLLM."""
    if os.environ.get("CODEGEN_LSP_SKIP_VLLM") == "1":
        return None
    out = subprocess.run([str(REPO / "scripts" / "setup_vllm.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/setup_vllm.sh failed:\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def export_bundled(folder: Path) -> Path:
    """`codegen-lsp export bundled` in float32: the exactness tests compare fp32 with fp32."""
    out = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", "export", "bundled", str(folder), "--dtype", "float32"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"export failed: {out.stderr}")
    return folder


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
        return json.loads(response.read())


def metrics(base: str) -> dict[str, float]:
    """vLLM's Prometheus counters and gauges, summed over their labels."""
    root = base.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+\deE.naNinf]+)", line)
        if match:
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(3))
    return values


class VllmServer:
    def __init__(
        self,
        python: str,
        model_dir: Path,
        log_path: Path,
        max_model_len: int = 512,
        served_name: str = "codegen-bundled",
        kv_cache_gib: int = 1,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.model_dir = model_dir
        env = dict(os.environ)
        env.update(
            VLLM_CACHE_ROOT=str(log_path.parent / "vllm-cache"),
            VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib),
            VLLM_LOGGING_LEVEL="WARNING",
            OMP_NUM_THREADS="2",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        env.pop("PYTHONPATH", None)  # the venv's own packages only
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(self.port),
             "--dtype", "float32", "--max-model-len", str(max_model_len), "--gpu-memory-utilization", "0.1",
             "--enable-prefix-caching", "--block-size", "32", "--enforce-eager", "--max-num-seqs", "8",
             "--seed", "0"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        self.log_path = log_path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                get_json(f"{self.url}/models", timeout=2)
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"vLLM did not start in {STARTUP_TIMEOUT_S} s:\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        """Resident memory of the server and every process under it (API server, engine core, worker)."""
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
