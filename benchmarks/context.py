"""Context from other files, measured on code the model never saw: `codegen-lsp bench context [--model M]`.

The held-out set (`build_points`, deterministic): the installed sources of this project's dependencies
(pygls, lsprotocol, httpx, huggingface_hub, ... under site-packages; the bundled model was trained on Python's
standard library only). Points are lines:
  cross-file - a line using an identifier that another file of the same project defines (at its top level or in
               a class), that the current file does not define and that does not occur earlier in it but in its
               imports (the CrossCodeEval criterion, by name rather than by static analysis);
  control    - ordinary lines of the same files that use no such identifier.
The cursor is at the end of the line's indentation; the model completes the line (single-line stop rule).
Each point is completed with context off / open files only / imports / retrieval / all, at the same snippet
budget, and scored as CrossCodeEval does: exact match, edit similarity (1 - Levenshtein / longer length) and
identifier F1. 95 % intervals by bootstrap over the points, paired with "off" for the differences.
"Open files" is simulated: the (up to) three files next to the current one in its folder's sorted listing.

Then what it costs: the time a keystroke spends on snippets (a block kept, a block chosen again), the cache
hit rate of a typing replay through the whole pipeline and the engine for each refresh policy, and (with
--workspace-files N) indexing a synthetic N-file workspace in the background thread while keystrokes are timed.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import keyword
import random
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

HELD_OUT_PROJECTS = (
    "pygls", "lsprotocol", "cattrs", "attr", "httpx", "httpcore", "h11", "anyio", "huggingface_hub", "filelock",
    "fsspec", "idna", "packaging", "tqdm", "yaml",
)  # fmt: skip
MODES = ("off", "open files", "imports", "retrieval", "all")
MAX_FILE_BYTES = 256 * 1024
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMON = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls"}


@dataclass(frozen=True)
class Point:
    project: str
    root: Path  # the project's folder: the workspace
    path: Path
    line: int  # 0-based
    column: int  # the end of the line's indentation: the cursor
    target: str  # the rest of the line: what the model should write
    kind: str  # "cross-file" | "control"


def dependencies_folder() -> Path:
    """The site-packages holding this project's dependencies (pygls is one): not `purelib`, which in a virtual
    environment made with --system-site-packages is the venv's own, nearly empty folder."""
    import pygls

    return Path(pygls.__file__).resolve().parent.parent


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and len(member.name) >= 5:
                    names.add(member.name)
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(member.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def _string_lines(tree: ast.Module) -> set[int]:
    """0-based lines inside multi-line strings (docstrings): not code to complete."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.end_lineno:
            lines.update(range(node.lineno - 1, node.end_lineno))
    return lines


def _completable(stripped: str) -> bool:
    return (
        8 <= len(stripped) <= 100
        and not stripped.startswith(("#", "import ", "from ", "@", '"', "'", ")", "]", "}"))
        and stripped not in ("else:", "try:", "finally:")
    )


def build_points(site: Path, n_cross: int, n_control: int, seed: int = 0) -> list[Point]:
    """The held-out points, the same for the same installed sources, counts and seed."""
    cross: list[Point] = []
    control: list[Point] = []
    for project in HELD_OUT_PROJECTS:
        root = site / project
        if not root.is_dir():
            continue
        files = sorted(
            p for p in root.rglob("*.py") if "__pycache__" not in p.parts and p.stat().st_size <= MAX_FILE_BYTES
        )
        parsed: dict[Path, tuple[str, ast.Module]] = {}
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
                parsed[path] = (text, ast.parse(text))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
        defined = {path: _defined_names(tree) for path, (_, tree) in parsed.items()}
        where: dict[str, set[Path]] = {}
        for path, names in defined.items():
            for name in names:
                where.setdefault(name, set()).add(path)
        for path, (text, tree) in parsed.items():
            strings = _string_lines(tree)
            seen: set[str] = set()
            for number, line in enumerate(text.split("\n")):
                found = set(_IDENTIFIER.findall(line))
                stripped = line.strip()
                if number not in strings and _completable(stripped):
                    elsewhere = [
                        n
                        for n in found - _COMMON
                        if n not in defined[path] and n not in seen and where.get(n, set()) - {path}
                    ]
                    column = len(line) - len(line.lstrip())
                    point = Point(project, root, path, number, column, line[column:].rstrip(), "")
                    if elsewhere:
                        cross.append(point)
                    elif not any(where.get(n, set()) - {path} for n in found - _COMMON):
                        control.append(point)
                if not stripped.startswith(("import ", "from ")):  # an import names it, shows nothing of it
                    seen |= found
    rng = random.Random(seed)
    chosen = [_kind(p, "cross-file") for p in rng.sample(cross, min(n_cross, len(cross)))]
    chosen += [_kind(p, "control") for p in rng.sample(control, min(n_control, len(control)))]
    return sorted(chosen, key=lambda p: (p.kind, str(p.path), p.line))


def _kind(point: Point, kind: str) -> Point:
    return Point(point.project, point.root, point.path, point.line, point.column, point.target, kind)


# -- scoring (CrossCodeEval's metrics) -----------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    longest = max(len(prediction), len(target))
    return 1.0 if longest == 0 else 1 - levenshtein(prediction, target) / longest


def identifier_f1(prediction: str, target: str) -> float:
    predicted = _IDENTIFIER.findall(prediction)
    wanted = _IDENTIFIER.findall(target)
    if not predicted and not wanted:
        return 1.0
    if not predicted or not wanted:
        return 0.0
    remaining = list(wanted)
    common = 0
    for name in predicted:
        if name in remaining:
            remaining.remove(name)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def scores(prediction: str, target: str) -> dict[str, float]:
    prediction, target = prediction.strip(), target.strip()
    return {
        "EM": float(prediction == target),
        "ES": edit_similarity(prediction, target),
        "ID F1": identifier_f1(prediction, target),
    }


def bootstrap(values: list[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95 % interval by bootstrap."""
    if not values:
        return (float("nan"),) * 3
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(values) / n, means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


# -- running -------------------------------------------------------------------------------------------------


def _sources(mode: str):
    from codegen_lsp.lsp_server.workspace.snippets import ALL_SOURCES, Source

    return {
        "open files": frozenset({Source.OPEN}),
        "imports": frozenset({Source.IMPORTS}),
        "retrieval": frozenset({Source.RETRIEVAL}),
        "all": ALL_SOURCES,
    }[mode]


def _open_neighbours(path: Path, count: int = 3) -> list[tuple[Path, str]]:
    siblings = sorted(p for p in path.parent.glob("*.py") if p.stat().st_size <= MAX_FILE_BYTES)
    at = siblings.index(path)
    order = sorted((abs(i - at), i) for i in range(len(siblings)) if i != at)
    return [(siblings[i], siblings[i].read_text(encoding="utf-8")) for _, i in order[:count]]


class Harness:
    """One model, the pipeline as the server runs it, and a workspace context per project."""

    def __init__(self, model: str, snippet_tokens: int, max_new_tokens: int) -> None:
        from codegen_lsp.inference.protocol import LoadFailed, ModelSpec
        from codegen_lsp.inference.worker.main import load_engine
        from codegen_lsp.lsp_server.settings import parse_settings

        said: list[object] = []

        class Collect:
            def send(self, message: object) -> None:
                said.append(message)

        self.engine = load_engine(ModelSpec(model=model, cache_slots=2), Collect())
        if self.engine is None:
            failed = next((m for m in said if isinstance(m, LoadFailed)), None)
            raise SystemExit(f"bench context: cannot load {model}: {failed.message if failed else 'unknown'}")
        self.model = model
        self.settings, warnings = parse_settings({"model": model, "maxNewTokens": max_new_tokens})
        assert not warnings, warnings
        self.snippet_tokens = snippet_tokens
        # the typing replay measures the prompt's reuse, not the completion: a few tokens each
        self.typing_settings, _ = parse_settings({"model": model, "maxNewTokens": 4})
        self._contexts: dict[tuple[Path, str], object] = {}
        self._ids = 0

    def context(self, root: Path, mode: str):
        from codegen_lsp.lsp_server.workspace.service import WorkspaceContext
        from codegen_lsp.lsp_server.workspace.snippets import RefreshPolicy

        key = (root, mode)
        if key not in self._contexts:
            ctx = WorkspaceContext(policy=RefreshPolicy.KEYSTROKE, sources=_sources(mode))
            shared = next((c for (r, _), c in self._contexts.items() if r == root), None)
            if shared is not None:  # the same index and tokenizer, other sources
                ctx.index, ctx.files, ctx.folders = shared.index, shared.files, shared.folders
            else:
                ctx.start([root], self.model, None, wait=True)
            self._contexts[key] = ctx
        return self._contexts[key]

    def plan(self, point: Point, mode: str, text: str, offset: int):
        from dataclasses import replace

        from codegen_lsp.lsp_server.languages import LANGUAGES
        from codegen_lsp.lsp_server.pipeline import Mode, plan, stop_patterns, stop_rule_for

        python = LANGUAGES["python"]
        planned = plan(text, offset, self.settings, invoked=True, language=python)
        assert planned is not None
        planned = replace(
            planned, rule=stop_rule_for(planned.ctx, stop_patterns(python, self.settings), Mode.SINGLE_LINE)
        )
        if mode == "off":
            return planned
        ctx = self.context(point.root, mode)
        ctx._open.clear()
        if mode in ("open files", "all"):
            for other, other_text in _open_neighbours(point.path):
                ctx._open[other.as_uri()] = _OpenDocument(other_text)
        g = self.settings.generation
        return ctx.plan_with_snippets(
            planned, point.path.as_uri(), text, offset,
            snippet_tokens=self.snippet_tokens, context_tokens=g.context_tokens, max_new_tokens=g.max_new_tokens,
        )  # fmt: skip

    def plan_for_typing(self, ctx, path: Path, text: str, offset: int):
        """The plan as the server makes it for a keystroke (its mode decided), with `ctx`'s snippets."""
        from codegen_lsp.lsp_server.languages import LANGUAGES
        from codegen_lsp.lsp_server.pipeline import plan

        planned = plan(text, offset, self.settings, invoked=True, language=LANGUAGES["python"])
        g = self.settings.generation
        return ctx.plan_with_snippets(
            planned, path.as_uri(), text, offset,
            snippet_tokens=self.snippet_tokens, context_tokens=g.context_tokens, max_new_tokens=g.max_new_tokens,
        )  # fmt: skip

    def plan_off(self, text: str, offset: int):
        from codegen_lsp.lsp_server.languages import LANGUAGES
        from codegen_lsp.lsp_server.pipeline import plan

        return plan(text, offset, self.settings, invoked=True, language=LANGUAGES["python"])

    def complete(self, planned) -> str:
        from codegen_lsp.lsp_server.pipeline import engine_request, finish_items

        self._ids += 1
        request = engine_request(planned, self.settings, request_id=self._ids, document=f"point-{self._ids % 2}")
        items = finish_items(self.engine.generate(request), planned.ctx, planned.rule)
        return items[0].split("\n")[0] if items else ""


@dataclass
class _OpenDocument:
    text: str
    language_id: str = "python"


def _point_text(point: Point) -> tuple[str, int]:
    text = point.path.read_text(encoding="utf-8")
    lines = text.split("\n")
    offset = sum(len(line) + 1 for line in lines[: point.line]) + point.column
    return text, offset


def quality(harness: Harness, points: list[Point]) -> tuple[dict, dict]:
    """scores[mode][kind] = list of per-point score dicts; timings of the snippet step (ms)."""
    results: dict[str, dict[str, list[dict[str, float]]]] = {m: {"cross-file": [], "control": []} for m in MODES}
    timing: dict[str, list[float]] = {"plan": [], "choose": []}
    for n, point in enumerate(points, 1):
        text, offset = _point_text(point)
        for mode in MODES:
            started = time.perf_counter()
            planned = harness.plan(point, mode, text, offset)
            elapsed = (time.perf_counter() - started) * 1000
            timing["plan" if mode == "off" else "choose"].append(elapsed)
            results[mode][point.kind].append(scores(harness.complete(planned), point.target))
        if n % 25 == 0:
            print(f"bench context: {n}/{len(points)} points", flush=True, file=__import__("sys").stderr)
    return results, timing


# -- cost: the cache while typing, keystroke time, a big workspace -------------------------------------------


def typing_cache(harness: Harness, path: Path, root: Path, keystrokes: int, policy) -> dict[str, float]:
    """Type the `keystrokes` characters after the middle of `path` one at a time (newlines included), a
    completion after each, through the pipeline and the engine: the share of prompt tokens reused."""
    from codegen_lsp.lsp_server.pipeline import engine_request
    from codegen_lsp.lsp_server.workspace.service import WorkspaceContext

    full = path.read_text(encoding="utf-8")
    start = full.find("\n", len(full) // 2) + 1
    ctx = WorkspaceContext(policy=policy)
    base = harness.context(root, "all")
    ctx.index, ctx.files, ctx.folders = base.index, base.files, base.folders
    uri = path.as_uri()
    ctx.opened(uri, _OpenDocument(full))
    typed_end = full.find("\n", start + keystrokes) + 1 or len(full)  # whole lines typed
    reused = total = recomputed = 0
    times = []
    for k in range(typed_end - start + 1):
        offset = start + k
        text = full[:offset] + full[typed_end:]  # the file, with what is typed so far of the replayed stretch
        started = time.perf_counter()
        planned = harness.plan_for_typing(ctx, path, text, offset) if policy else harness.plan_off(text, offset)
        times.append((time.perf_counter() - started) * 1000)
        request = engine_request(planned, harness.typing_settings, request_id=10**6 + k, document="typing")
        result = harness.engine.generate(request)
        if k:  # the first request is the file as it was opened
            reused += result.timings.tokens_reused
            total += result.prompt_tokens
            recomputed += result.timings.tokens_reused < result.prompt_tokens // 2
    return {
        "hit": reused / max(total, 1),
        "chosen": ctx.cache.chosen,
        "recomputed": recomputed,
        "requests": typed_end - start,
        "ms": statistics.median(times),
    }


def synthetic_workspace(folder: Path, files: int) -> Path:
    """`files` small Python files in nested folders (100 a folder), plus a .gitignore'd folder and a binary."""
    if folder.exists():
        shutil.rmtree(folder)
    for i in range(files):
        sub = folder / f"pkg{i // 1000}" / f"mod{i // 100 % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i}.py").write_text(
            f"from pkg{i // 1000}.mod0.file0 import helper_0\n\n\ndef helper_{i}(value, scale={i % 7}):\n"
            f"    total = value * scale + {i}\n    return helper_0(total)\n\n\nclass Thing{i}:\n"
            f"    size: int = {i % 13}\n\n    def grow(self, by):\n        return self.size + by\n"
        )
    (folder / "build").mkdir(exist_ok=True)
    (folder / "build" / "generated.py").write_text("x = 1\n" * 10)
    (folder / ".gitignore").write_text("build/\n")
    (folder / "blob.py").write_bytes(b"\0\1\2" * 100)
    return folder


def big_workspace(harness: Harness, files: int, keystrokes: int = 200) -> list[str]:
    """Index a synthetic `files`-file workspace in the background thread while keystrokes are planned here."""
    import resource

    from codegen_lsp.lsp_server.workspace.service import WorkspaceContext

    root = synthetic_workspace(Path("/tmp/codegen-lsp-bench-workspace"), files)
    document = root / "pkg0" / "mod0" / "file1.py"
    text = document.read_text(encoding="utf-8") + "\n\ndef more(x):\n    return helper_"
    idle = []
    for _ in range(keystrokes):
        started = time.perf_counter()
        harness.plan_off(text, len(text))
        idle.append((time.perf_counter() - started) * 1000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ctx = WorkspaceContext()
    started = time.perf_counter()
    ctx.start([root], harness.model, None)
    busy = []
    while ctx._thread is not None and ctx._thread.is_alive():
        tick = time.perf_counter()
        harness.plan_off(text, len(text))
        busy.append((time.perf_counter() - tick) * 1000)
        time.sleep(0.01)  # a fast typist: one keystroke every 10 ms (plus the keystroke's own time)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert ctx.index is not None
    snippet = []
    for _ in range(keystrokes):
        tick = time.perf_counter()
        ctx.cache.clear()  # choose every time: the worst case
        harness.plan_for_typing(ctx, document, text, len(text))
        snippet.append((time.perf_counter() - tick) * 1000)
    return [
        f"Synthetic workspace of {files} files (/tmp): indexed in the background thread in {seconds:.1f} s: "
        f"{ctx.index.report.describe()}; peak resident memory grew by {(after - before) / 1024:.0f} MB.",
        f"- a keystroke's pipeline (plan) idle: p50 {statistics.median(idle):.2f} ms, p95 "
        f"{_pct(idle, 0.95):.2f} ms; while indexing ({len(busy)} keystrokes): p50 {statistics.median(busy):.2f} ms, "
        f"p95 {_pct(busy, 0.95):.2f} ms, max {max(busy):.1f} ms;",
        f"- choosing the snippets from that index (every keystroke, no cache): p50 {statistics.median(snippet):.2f} "
        f"ms, p95 {_pct(snippet, 0.95):.2f} ms.",
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the report ----------------------------------------------------------------------------------------------


def _cell(values: list[float], scale: float = 100) -> str:
    mean, low, high = bootstrap(values)
    return f"{mean * scale:.1f} [{low * scale:.1f}, {high * scale:.1f}]"


def _difference(values: list[float], base: list[float]) -> tuple[float, float, float]:
    return bootstrap([v - b for v, b in zip(values, base, strict=True)])


def context_benchmark(args: argparse.Namespace) -> str:
    import os

    import torch

    from codegen_lsp.lsp_server.workspace.snippets import RefreshPolicy

    torch.set_num_threads(args.threads)  # the bundled model gains nothing from more; on shared cores OpenMP's
    # spinning threads made each completion ~20x slower (0.5 s -> 6-11 s with two threads, load 11 on 2 cores)
    site = Path(args.site) if args.site else dependencies_folder()
    points = build_points(site, args.points - args.points // 4, args.points // 4, seed=args.seed)
    harness = Harness(args.model, args.snippet_tokens, args.max_new_tokens)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    results, timing = quality(harness, points)
    seconds = time.perf_counter() - started
    projects = sorted({p.project for p in points})
    kinds = {k: sum(p.kind == k for p in points) for k in ("cross-file", "control")}
    lines = [
        f"Context from other files: {args.model}, snippet budget {args.snippet_tokens} tokens (at most half the "
        f"prompt's), max {args.max_new_tokens} new tokens, greedy, single line. Held-out points: "
        f"{kinds['cross-file']} cross-file and {kinds['control']} control lines from {', '.join(projects)} "
        f"(site-packages, seed {args.seed}); {seconds:.0f} s on {os.cpu_count()} CPUs, {args.threads} torch "
        f"thread(s), load average {load:.1f} at the start (a shared machine: timings are noisy).",
        "",
        "| lines | context | EM % | ES % | ID F1 % | ΔES vs off [95 %] | ΔEM vs off [95 %] |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = {}
    for kind in ("cross-file", "control"):
        off = results["off"][kind]
        for mode in MODES:
            rows = results[mode][kind]
            em, es, idf = ([r[m] for r in rows] for m in ("EM", "ES", "ID F1"))
            d_es = _difference(es, [r["ES"] for r in off])
            d_em = _difference(em, [r["EM"] for r in off])
            verdicts[(kind, mode)] = (d_es, d_em)
            delta = "" if mode == "off" else f"{d_es[0] * 100:+.1f} [{d_es[1] * 100:+.1f}, {d_es[2] * 100:+.1f}]"
            delta_em = "" if mode == "off" else f"{d_em[0] * 100:+.1f} [{d_em[1] * 100:+.1f}, {d_em[2] * 100:+.1f}]"
            lines.append(f"| {kind} | {mode} | {_cell(em)} | {_cell(es)} | {_cell(idf)} | {delta} | {delta_em} |")
    gain = verdicts[("cross-file", "all")][0][1] > 0
    no_loss = verdicts[("control", "all")][0][2] >= 0
    lines += [
        "",
        f"Verdict for `all`: a significant gain on cross-file lines (ΔES interval above 0): {'yes' if gain else 'no'};"
        f" no significant loss on control lines (ΔES interval reaches 0 or above): {'yes' if no_loss else 'no'}.",
        f"Snippet step per request: plan alone p50 {statistics.median(timing['plan']):.2f} ms; plan + choosing "
        f"snippets p50 {statistics.median(timing['choose']):.2f} ms, p95 {_pct(timing['choose'], 0.95):.2f} ms.",
        "",
        "Typing replay through the pipeline and the engine (prompt tokens reused from the KV cache, per request):",
        "",
        "| context | refresh | cache hit rate | blocks chosen | requests recomputing most of the prompt | "
        "pipeline p50 ms |",
        "|---|---|---|---|---|---|",
    ]
    typed = next(p for p in points if p.kind == "cross-file")
    off = typing_cache(harness, typed.path, typed.root, args.keystrokes, None)
    lines.append(f"| off | — | {off['hit']:.1%} | — | {off['recomputed']} of {off['requests']} | {off['ms']:.2f} |")
    for policy in RefreshPolicy:
        row = typing_cache(harness, typed.path, typed.root, args.keystrokes, policy)
        lines.append(
            f"| all | {policy.value} | {row['hit']:.1%} | {row['chosen']} | {row['recomputed']} of "
            f"{row['requests']} | {row['ms']:.2f} |"
        )
    lines.append(
        f"({args.keystrokes} keystrokes typed from the middle of {typed.path.relative_to(site)}, newlines included.)"
    )
    if args.workspace_files:
        lines += ["", *big_workspace(harness, args.workspace_files)]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="bundled", help="Hub id, local folder or `bundled`")
    parser.add_argument("--points", type=int, default=200, help="held-out lines; a quarter of them control lines")
    parser.add_argument("--snippet-tokens", type=int, default=192, help="the snippets' budget (contextSnippetTokens)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--keystrokes", type=int, default=120, help="typing replay length per refresh policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--site", default=None, help="the site-packages folder to build the held-out set from")
    parser.add_argument(
        "--workspace-files", type=int, default=0, help="also index a synthetic workspace of this many files"
    )
