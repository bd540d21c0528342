"""Benchmarks: our engine and server against the peers in the same run. Commands, never tests; not in the wheel,
and never imported by the product (`codegen-lsp bench` runs `python -m benchmarks` in a process of its own).

    python -m benchmarks KIND [args]       (from a checkout)
    codegen-lsp bench KIND [args]          (the same, from an editable install of the checkout)

The kinds are `KINDS` in `__main__.py`, one line each (`python -m benchmarks` with no KIND prints them): engine,
typing, memory, server, remote, soak, quantization and context; tests/test_boundaries.py checks that this line
names every one (add a new kind here too).
"""
