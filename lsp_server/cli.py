"""`codegen-lsp`: the language server (default), one completion from the command line, benchmarks.

    codegen-lsp [serve] [--stdio | --tcp --port N] [--log-level LEVEL]
    codegen-lsp complete --model MODEL FILE --line L --character C [--json] [...]
    codegen-lsp export MODEL OUTDIR [--dtype DTYPE]
    codegen-lsp doctor [--model MODEL] [--settings JSON] [--json]   (OK/WARN/FAIL lines; exit 1: unusable)
    codegen-lsp bench KIND [args]   (from a checkout: `codegen-lsp bench` lists the kinds)
    codegen-lsp --version

Only `complete`, `doctor` and `export` import torch (`complete` and `doctor` run the engine in this process); `serve`
never does. `bench` runs `python -m benchmarks` from the checkout in a process of its own: the product never imports
the benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from codegen_lsp.inference.protocol import DTYPE_CHOICES, FLOAT_DTYPES
from codegen_lsp.lsp_server.doctor import add_arguments as add_doctor_arguments
from codegen_lsp.lsp_server.doctor import run as run_doctor
from codegen_lsp.lsp_server.languages import LANGUAGE_IDS

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TTY_NOTICE = (
    "codegen-lsp: a language server; it speaks LSP on stdin/stdout and is started by your editor (see README.md). "
    "`codegen-lsp --help` lists the commands, `codegen-lsp doctor` checks the set-up. Ctrl-C quits."
)


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        return package_version("codegen-lsp")
    except (ImportError, PackageNotFoundError):
        from codegen_lsp.lsp_server.server import VERSION  # not installed (a source checkout)

        return VERSION


class CliError(Exception):
    """One line for the person; exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegen-lsp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the language server (the default)")
    _serve_arguments(serve)

    complete = commands.add_parser(
        "complete", help="complete FILE at a position, as the server would, and print the completion"
    )
    complete.add_argument("file", type=Path, metavar="FILE", help="the source file to complete (UTF-8)")
    complete.add_argument("--model", default=None, help="Hub id, local folder or `bundled` (default: the setting)")
    complete.add_argument(
        "--language",
        choices=LANGUAGE_IDS,
        help="the file's language (default: from its extension; Python when the extension says nothing)",
    )
    complete.add_argument("--line", type=int, required=True, help="0-based line")
    complete.add_argument("--character", type=int, required=True, help="0-based, in UTF-16 code units (as LSP)")
    complete.add_argument("--max-new-tokens", type=int, help="most tokens to generate (setting maxNewTokens)")
    complete.add_argument("--temperature", type=float, help="0: greedy; above 0: sampled (setting temperature)")
    complete.add_argument("--num-candidates", type=int, help="how many completions to print (setting numCandidates)")
    complete.add_argument("--context-tokens", type=int, help="most tokens of the file read (setting contextTokens)")
    complete.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs (setting device)")
    complete.add_argument("--dtype", choices=DTYPE_CHOICES, help="weights and activations (setting dtype)")
    complete.add_argument(
        "--settings",
        default=None,
        help="more settings as JSON, the way a client sends them (camelCase names)",
    )
    complete.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="a workspace folder: snippets of its other files go before FILE's text, as the server chooses them "
        "(needs contextSnippetTokens above 0, e.g. --settings '{\"contextSnippetTokens\": 192}')",
    )
    complete.add_argument("--json", action="store_true", help="print completion, raw text, token ids, timings")

    export = commands.add_parser(
        "export", help="write MODEL as a GPT-J checkpoint (config.json, model.safetensors, tokenizer) for vLLM"
    )
    export.add_argument("model", help="Hub id, local folder or `bundled`")
    export.add_argument("outdir", type=Path, help="a new (or empty) folder")
    export.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    export.add_argument(
        "--dtype",
        choices=("auto", *FLOAT_DTYPES),
        default="auto",
        help="dtype of the written weights (auto: as the checkpoint stores them)",
    )

    doctor = commands.add_parser("doctor", help="check the set-up: torch, device, dtype, model, speed")
    add_doctor_arguments(doctor)

    bench = commands.add_parser("bench", help="benchmarks (from a checkout): `codegen-lsp bench` lists them")
    bench.add_argument("kind", nargs="?", default="")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    transport.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (0: any free port, printed on stderr)")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="until the client's settings say otherwise",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Editors start servers as `prog --stdio` (vscode-languageclient adds it): no subcommand means serve.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("--version", "-h", "--help")):
        argv = ["serve", *argv]
    if argv[0] == "bench":
        return _bench(argv[1] if len(argv) > 1 else "", argv[2:])  # the benchmarks parse their own arguments
    args = _parser().parse_args(argv)
    if args.version:
        print(f"codegen-lsp {version()}")
        return 0
    if args.command == "serve":
        return _serve(args)
    if args.command == "doctor":
        return run_doctor(args)
    if args.command in ("complete", "export"):
        try:
            return (_complete if args.command == "complete" else _export)(args)
        except CliError as error:
            print(f"codegen-lsp {args.command}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:  # `| head`: the reader left; no traceback, and none again when Python flushes
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if args.command == "bench":
        return _bench(args.kind, args.args)
    _parser().print_help(sys.stderr)
    return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    from codegen_lsp.lsp_server.logging_setup import setup_logging

    setup_logging(args.log_level or "info")
    from codegen_lsp.lsp_server.server import server

    try:
        if args.tcp:
            try:
                return server.start_tcp("127.0.0.1", args.port)
            except OSError as error:  # the port is taken (or not ours): one line, no traceback
                why = os.strerror(error.errno) if error.errno else str(error)
                print(f"codegen-lsp serve: error: cannot listen on 127.0.0.1:{args.port}: {why}", file=sys.stderr)
                return EXIT_USAGE
        if sys.stdin.isatty():  # typed in a terminal: say what it waits for instead of waiting silently
            # Ctrl-C: a quiet exit, as a shell expects (128 + SIGINT). Not KeyboardInterrupt: raised between
            # asyncio.run's creating the serving coroutine and its running it, it left "coroutine was never
            # awaited" and a traceback from the loop's __del__ on the terminal. The worker, in the same process
            # group, gets the same SIGINT and sees its pipe close.
            signal.signal(signal.SIGINT, _exit_interrupted)
            print(TTY_NOTICE, file=sys.stderr, flush=True)
        return server.start_io()
    except KeyboardInterrupt:  # Ctrl-C before the handler above was in place
        return EXIT_INTERRUPTED


def _exit_interrupted(signum: int, frame: object) -> None:
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _bench(kind: str, args: list[str]) -> int:
    """The benchmarks live beside the product (`benchmarks/` in the checkout), not in the wheel, and the product
    never imports them: `python -m benchmarks` runs in its own process, with the checkout on its path."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        print(
            "codegen-lsp bench: error: the benchmarks are not installed: run them from a checkout of codegen-lsp "
            "(pip install -e '.[test]', then codegen-lsp bench ... or python -m benchmarks ...)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.call(
            [sys.executable, "-m", "benchmarks", kind, *args], env={**os.environ, "PYTHONPATH": path}
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _export(args: argparse.Namespace) -> int:
    from codegen_lsp.inference.checkpoint.export_gptj import ExportError, export_gptj
    from codegen_lsp.inference.errors import ModelLoadError

    def progress(message: str, fraction: float | None) -> None:
        print(f"codegen-lsp export: {message}", file=sys.stderr)

    try:
        outdir = export_gptj(args.model, args.outdir, args.revision, args.dtype, progress)
    except ExportError as error:
        raise CliError(str(error)) from None
    except ModelLoadError as error:
        raise CliError(f"cannot export {args.model!r}: {error.message}") from None
    print(f"wrote a GPT-J checkpoint to {outdir}")
    return 0


def _complete(args: argparse.Namespace) -> int:
    """One completion, as the server would make it: each step below is one of the server's, or the file's."""
    from codegen_lsp.lsp_server.documents import Document
    from codegen_lsp.lsp_server.pipeline import engine_request, finish_items, plan

    settings = _settings_from(args)
    text = _read_text(args.file)
    language = _language(args, settings)
    document = Document(args.file.resolve().as_uri(), text, language.language_ids[0])
    offset = _cursor_offset(document, args)
    planned = plan(text, offset, settings, invoked=True, language=language)
    assert planned is not None  # an explicit request always completes
    if args.workspace is not None:
        planned = _with_workspace(args.workspace, planned, document.uri, text, offset, settings)
    request = engine_request(planned, settings, request_id=1, document=document.uri)
    result, load_ms = _generate(settings, request)
    items = finish_items(result, planned.ctx, planned.rule)
    _print_completion(result, items, offset, load_ms, as_json=args.json, prompt=request.prompt)
    return 0


def _settings_from(args: argparse.Namespace):
    """--settings JSON, then the options that name a setting on top; any warning is an error here."""
    from codegen_lsp.lsp_server.settings import parse_settings

    raw: dict = {}
    if args.settings:
        try:
            raw = json.loads(args.settings)
        except ValueError as error:
            raise CliError(f"--settings is not JSON: {error}") from None
        if not isinstance(raw, dict):
            raise CliError("--settings must be a JSON object")
    for key, value in (
        ("model", args.model),
        ("maxNewTokens", args.max_new_tokens),
        ("temperature", args.temperature),
        ("numCandidates", args.num_candidates),
        ("contextTokens", args.context_tokens),
        ("device", args.device),
        ("dtype", args.dtype),
    ):
        if value is not None:
            raw[key] = value
    settings, warnings = parse_settings(raw)
    if warnings:
        raise CliError(" ".join(warnings))
    return settings


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a folder, not a file") from None
    except OSError as error:
        raise CliError(f"{path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise CliError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _language(args: argparse.Namespace, settings):
    """--language, else the file's extension, else Python; a warning when the model was not trained on it."""
    from codegen_lsp.lsp_server.languages import LANGUAGES, enabled_language_ids, language_for_id, language_for_path

    chosen = language_for_id(args.language) if args.language else language_for_path(args.file)
    language = chosen or LANGUAGES["python"]
    if language.language_ids[0] not in enabled_language_ids("auto", settings.model.model):
        print(
            f"codegen-lsp complete: warning: {settings.model.model} was trained on Python only; "
            f"completing {language.title} anyway",
            file=sys.stderr,
        )
    return language


def _cursor_offset(document, args: argparse.Namespace) -> int:
    """--line/--character (0-based, UTF-16 as LSP) as a code point offset into the text; past the end is an error."""
    if args.line < 0 or args.character < 0:
        raise CliError("--line and --character are 0-based and cannot be negative")
    if args.line >= document.line_count:
        raise CliError(
            f"{args.file} has {document.line_count} lines (0 to {document.line_count - 1}); "
            f"--line {args.line} is past the end"
        )
    return document.offset_at(args.line, args.character, "utf-16")


def _generate(settings, request):
    """(result, load_ms) from the backend the settings choose: the remote server, or the engine in this process."""
    if settings.backend.backend == "openai":
        return _generate_remotely(settings, request)
    engine, load_ms = _load_engine(settings)
    try:
        return engine.generate(request), load_ms
    except (ValueError, TypeError) as error:
        raise CliError(f"the engine refused the request: {error}") from None


def _with_workspace(folder: Path, planned, uri: str, text: str, offset: int, settings):
    """The plan with snippets of the workspace `folder`'s other files, chosen as the server chooses them (the
    same WorkspaceContext; the index is built here and waited for)."""
    from codegen_lsp.lsp_server.workspace.service import WorkspaceContext

    if not folder.is_dir():
        raise CliError(f"--workspace {folder}: not a folder")
    if settings.generation.context_snippet_tokens <= 0:
        raise CliError("--workspace needs contextSnippetTokens above 0: --settings '{\"contextSnippetTokens\": 192}'")
    context = WorkspaceContext()
    context.start([folder], settings.model.model, settings.model.revision, wait=True)
    if not context.ready:
        raise CliError(f"--workspace: the tokenizer of {settings.model.model} did not load (see the log above)")
    return context.plan_with_settings(planned, uri, text, offset, settings)


def _print_completion(
    result, items: list[str], offset: int, load_ms: float, *, as_json: bool, prompt: str = ""
) -> None:
    """The first item as text; or, with --json, the completion with its raw text, token ids, stop and timings."""
    completion = items[0] if items else ""
    if not as_json:
        sys.stdout.write(completion + ("\n" if completion and not completion.endswith("\n") else ""))
        return
    first = result.candidates[0] if result.candidates else None
    output = {
        "completion": completion,
        "raw": first.text if first else "",
        "token_ids": list(first.token_ids) if first else [],
        "prompt_tokens": result.prompt_tokens,
        "prompt": prompt,  # the text the backend was asked (the file's, after snippets of other files if any)
        "stop_reason": first.stop_reason.value if first else None,
        "offset": offset,  # the cursor as a code point index into the file's text
        "candidates": items,
        "timings": {**asdict(result.timings), "load_ms": load_ms},
    }
    print(json.dumps(output, ensure_ascii=False))


class _Collect:
    """Stands in for the worker's pipe: keeps what `load_engine` would tell the server."""

    def __init__(self) -> None:
        self.messages: list[object] = []

    def send(self, message: object) -> None:
        self.messages.append(message)


def _generate_remotely(settings, request):
    """The same request through the remote backend (`backend: openai`), as the server would send it."""
    import asyncio
    import time

    from codegen_lsp.lsp_server.backends import BackendError
    from codegen_lsp.lsp_server.backends.openai import OpenAIBackend, load_model_files

    said: list[str] = []

    async def run():
        start = time.perf_counter()
        files = load_model_files(settings.model.model, settings.model.revision)
        backend = OpenAIBackend(settings.remote_spec(), files, on_status=lambda kind, message: said.append(message))
        await backend.start()
        try:
            return await backend.generate(request), (time.perf_counter() - start) * 1000
        finally:
            await backend.stop()

    try:
        return asyncio.run(run())
    except BackendError as error:
        raise CliError(said[0] if said else error.message) from None


def _load_engine(settings):
    """The engine exactly as the worker builds it (same loader, same CUDA graph choice), in this process."""
    from codegen_lsp.inference.protocol import LoadFailed, ModelReady
    from codegen_lsp.inference.worker.main import load_engine

    spec = settings.model_spec()
    said = _Collect()
    engine = load_engine(spec, said)  # type: ignore[arg-type]
    if engine is None:
        failed = next((m for m in said.messages if isinstance(m, LoadFailed)), None)
        reason = failed.message if failed is not None else "unknown error"
        raise CliError(f"could not load the model {spec.model!r}: {reason}")
    ready = next(m for m in said.messages if isinstance(m, ModelReady))
    if ready.warning:
        print(f"codegen-lsp complete: warning: {ready.warning}", file=sys.stderr)
    return engine, ready.load_ms


if __name__ == "__main__":
    sys.exit(main())
