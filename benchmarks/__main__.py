"""`python -m benchmarks KIND [args]`: one benchmark, its table printed to stdout."""

from __future__ import annotations

import argparse
import importlib
import sys

# kind: (what it measures, module, its argument adder, its runner, whether it takes --device/--threads/--workdir)
KINDS = {
    "engine": ("prefill and decode speed, ours against the peers", "engine", "add_engine_arguments",
               "engine_benchmark", True),
    "typing": ("keystroke latency over a typing replay", "typing_replay", "add_arguments", "typing_benchmark", True),
    "memory": ("peak resident memory and load time", "memory", "add_arguments", "memory_benchmark", True),
    "quantization": ("what int8/int4 do to the logits and greedy output, against float32", "quantization",
                     "add_arguments", "quantization_benchmark", True),
    "server": ("end to end over the protocol: keystroke latency and start-up", "server", "add_arguments",
               "server_benchmark", False),
    "remote": ("the team server: typing through a real vLLM, N editors against one server", "remote",
               "add_arguments", "remote_benchmark", True),
    "soak": ("memory over a long typing replay: what the server and worker keep per message", "soak",
             "add_arguments", "soak_benchmark", False),
    "context": ("snippets from other files: held-out quality, cache and keystroke cost", "context",
                "add_arguments", "context_benchmark", False),
}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in KINDS:
        listing = "\n".join(f"  {kind:8} {entry[0]}" for kind, entry in KINDS.items())
        print(f"usage: codegen-lsp bench KIND [args]\n\nKIND:\n{listing}", file=sys.stderr)
        raise SystemExit(2)
    kind, rest = argv[0], argv[1:]
    description, module_name, add_name, run_name, common = KINDS[kind]
    parser = argparse.ArgumentParser(prog=f"codegen-lsp bench {kind}", description=description)
    module = importlib.import_module(f"benchmarks.{module_name}")
    getattr(module, add_name)(parser)
    if common:
        from benchmarks.common import common_arguments

        common_arguments(parser)
    print(getattr(module, run_name)(parser.parse_args(rest)), flush=True)


if __name__ == "__main__":
    main()
