"""The tree is as `ruff check` and `ruff format` want it: one formatter, run by CI through this test."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ruff") or pytest.fail("ruff is a test dependency: pip install -e '.[test]'")
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ruff_check_is_clean():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout + result.stderr


def test_ruff_is_the_pinned_version():
    """A newer ruff formats differently; the pin in pyproject.toml keeps CI and developers on one style."""
    pinned = next(line for line in (REPO / "pyproject.toml").read_text().splitlines() if '"ruff==' in line)
    version = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, text=True).stdout
    assert pinned.split("==")[1].split('"')[0] in version
