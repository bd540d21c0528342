"""Benchmarks: our engine and server against the peers in the same run. Commands, never tests; not in the wheel.

python -m benchmarks engine|typing|memory|server [args]      (from a checkout)
codegen-lsp bench engine|typing|memory|server [args]         (the same, where the checkout is importable)
"""
