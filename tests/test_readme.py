"""The README tells the truth: its settings table is the declared one, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_command_after(heading: str) -> str:
    section = README.split(f"## {heading}\n", 1)[1]
    return re.search(r"```sh\n(.+?)\n```", section, re.DOTALL).group(1).strip()


def test_the_settings_table_is_generated_from_the_declarations():
    from scripts.sync_readme import synced

    assert synced(README) == README, "run: python scripts/sync_readme.py"


def test_ci_runs_the_readme_test_command():
    command = fenced_command_after("Test")
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_run_command_completes_a_file_that_exists():
    command = fenced_command_after("Install and run")
    example = re.search(r"(examples/\S+\.py)", command).group(1)
    assert (ROOT / example).is_file()
    assert "--model bundled" in command
