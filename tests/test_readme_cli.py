"""The README's command-line section says what the commands do now: the `--json` fields of `complete`, the
benchmarks' list, the CPU wheel that `doctor` also names."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from codegen_lsp.lsp_server.doctor import CPU_WHEEL
from tests.lsp_client import REPO, server_env

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_json_fields_are_the_ones_complete_prints() -> None:
    listed = re.search(r"With `--json`: `\{(.+?)\}`", README, re.DOTALL).group(1)
    fields = re.findall(r'"(\w+)"', listed)
    run = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", "complete", "--model", "bundled", "examples/inventory.py"]
        + ["--line", "21", "--character", "8", "--max-new-tokens", "4", "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        env=server_env(),
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert fields == list(json.loads(run.stdout))


def test_the_benchmarks_are_listed_by_bench_itself() -> None:
    """One list: `codegen-lsp bench` prints the kinds (the README had lost `soak` when it kept its own copy)."""
    assert "codegen-lsp bench KIND [options]" in README and "`codegen-lsp bench` lists them" in README
    run = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", "bench"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert "soak" in run.stdout + run.stderr


def test_the_cpu_wheel_is_the_one_doctor_names() -> None:
    assert f"`{CPU_WHEEL}`" in README
