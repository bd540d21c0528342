"""`python -m benchmarks KIND [args]`: one benchmark, its table printed to stdout."""

from __future__ import annotations

import argparse
import sys

KINDS = {
    "engine": "prefill and decode speed, ours against transformers",
    "typing": "keystroke latency over a typing replay",
    "memory": "peak resident memory and load time",
    "server": "end to end over the protocol: keystroke latency and start-up",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in KINDS:
        listing = "\n".join(f"  {kind:8} {what}" for kind, what in KINDS.items())
        print(f"usage: codegen-lsp bench KIND [args]\n\nKIND:\n{listing}", file=sys.stderr)
        raise SystemExit(2)
    kind, rest = argv[0], argv[1:]
    parser = argparse.ArgumentParser(prog=f"codegen-lsp bench {kind}", description=KINDS[kind])
    if kind == "server":
        from benchmarks import server

        server.add_arguments(parser)
        print(server.server_benchmark(parser.parse_args(rest)), flush=True)
        return
    from benchmarks import engine, typing_replay
    from benchmarks.common import common_arguments

    add, run = {
        "engine": (engine.add_engine_arguments, engine.engine_benchmark),
        "typing": (typing_replay.add_arguments, typing_replay.typing_benchmark),
        "memory": (engine.add_memory_arguments, engine.memory_benchmark),
    }[kind]
    add(parser)
    common_arguments(parser)
    print(run(parser.parse_args(rest)), flush=True)


if __name__ == "__main__":
    main()
