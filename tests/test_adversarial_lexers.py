"""Pathological input for the lexers: nothing an editor can hold makes them slower than linear.

Each case runs in a child process with a hang guard (minutes) far above what the linear scanner needs (well
under a second) and far below what a quadratic one needs at this size (an hour): the guard catches a hang, it
does not time anything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HANG_GUARD_S = 120


def run_isolated(code: str) -> str:
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=HANG_GUARD_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still scanning after {HANG_GUARD_S} s: not linear")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_nested_javascript_template_openers_scan_in_linear_time():
    """Each `${` used to copy the tuple of open templates: 1 MB of openers was ~10^11 element copies."""
    depth = run_isolated(
        """
        from codegen_lsp.inference.rules.syntax import SYNTAXES, scan, walk
        js = SYNTAXES["javascript"]
        print(len(scan("`${" * 350_000, js).templates))
        events, state = walk("x = `a${ {b: `c${" * 60_000, js)
        assert len(state.templates) == 120_000 and len(events) == 180_000
        """
    )
    assert depth == "350000"


def test_a_megabyte_line_of_openers_after_the_cursor_is_post_processed_in_linear_time():
    """The reported freeze: a 300 KB line of nested openers right of the cursor, met by post-processing's search
    for the first unmatched closer (here 1 MB)."""
    found = run_isolated(
        """
        from codegen_lsp.inference.rules.syntax import SYNTAXES, CODE
        from codegen_lsp.lsp_server.pipeline.lexical import first_unmatched_closer
        suffix = "`${" * 350_000 + "}"
        print(first_unmatched_closer(suffix, SYNTAXES["javascript"], CODE))
        """
    )
    assert found == "None"
