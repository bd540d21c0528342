"""`codegen-lsp` typed by a person: in a terminal it says what it is instead of waiting silently, Ctrl-C ends it
quietly, and every option of `complete` says what it does."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

from codegen_lsp.lsp_server.cli import TTY_NOTICE
from tests.lsp_client import REPO, server_env


def read_until(fd: int, wanted: bytes, timeout: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_in_a_terminal_it_says_what_it_is_and_ctrl_c_ends_it_quietly() -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the server, its stdin and stderr a terminal
        os.chdir(REPO)
        os.execvpe(sys.executable, [sys.executable, "-m", "codegen_lsp.lsp_server"], server_env())
    try:
        shown = read_until(fd, b"Ctrl-C quits.")
        assert TTY_NOTICE.encode() in shown.replace(b"\r\n", b"\n")
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline (SIGINT)
        rest = read_until(fd, b"never printed", timeout=30)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130
    assert b"Traceback" not in rest and b"KeyboardInterrupt" not in rest, rest


def test_from_an_editor_it_says_nothing_on_stderr_before_the_protocol() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server"],
        input=b"",
        capture_output=True,
        env=server_env(),
        cwd=REPO,
        timeout=60,
    )
    assert TTY_NOTICE.encode() not in run.stderr


def test_complete_help_says_what_every_option_does() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", "complete", "--help"],
        capture_output=True,
        text=True,
        env=server_env(COLUMNS="200"),
        timeout=60,
    )
    assert run.returncode == 0
    text = " ".join(run.stdout.split())  # argparse wraps where it likes
    for option, words in (
        ("FILE", "the source file to complete"),
        ("--max-new-tokens", "most tokens to generate"),
        ("--temperature", "0: greedy"),
        ("--num-candidates", "how many completions"),
        ("--context-tokens", "most tokens of the file read"),
        ("--device", "where the model runs"),
        ("--dtype", "weights and activations"),
    ):
        assert re.search(rf"{re.escape(option)}( \S+)? {re.escape(words)}", text), (option, run.stdout)
