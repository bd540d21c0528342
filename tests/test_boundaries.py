"""Where code runs is part of its address: the server never imports torch, by construction.

Proved on the source, not on one run: every module the server can reach through any import statement (at the top
of a file or inside a function, transitively through codegen_lsp's own modules) is torch-free. One edge crosses a
process boundary and is named here: the server imports the worker's entry point to spawn it, and the imports
inside that module's functions run only in the worker process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "codegen_lsp"
FOLDERS = {"lsp_server", "inference", "tokenizer"}  # codegen_lsp.<folder> lives in ./<folder>
FORBIDDEN = ("torch", "safetensors.torch", "transformers")

# The process boundary: lsp_server/backends/local.py imports `worker_main` to spawn the worker; that module's
# top-level imports load in the server (they are checked), the imports in its functions run only in the child.
WORKER_ENTRY = "codegen_lsp.inference.worker.main"

# Torch-free by promise: both processes import them (the server to post-process, read configs and tokenize).
TORCH_FREE = (
    "codegen_lsp.inference.rules.syntax",
    "codegen_lsp.inference.rules.stop_rule",
    "codegen_lsp.inference.rules.window",
    "codegen_lsp.inference.rules.generation",
    "codegen_lsp.inference.protocol",
    "codegen_lsp.inference.errors",
    "codegen_lsp.inference.checkpoint.hub",
    "codegen_lsp.inference.checkpoint.config",
    "codegen_lsp.tokenizer",
    "codegen_lsp.lsp_server.server",
)


def module_path(module: str) -> Path | None:
    """The file of one of our modules (a package's __init__.py), None for anything else."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2 or parts[1] not in FOLDERS:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def read_module(module: str) -> str | None:
    path = module_path(module)
    return path.read_text() if path is not None else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, line) for every import statement that can run: at the top and, unless `top_level_only`, inside
    functions and classes too; `if TYPE_CHECKING:` blocks never run. `from a import b` names a.b as well (b may
    be a module)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: a relative import (the project imports absolutely)"
            assert node.module is not None
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
        if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        visit(node)

    visit(ast.parse(source))
    return found


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a, a.b and a.b.c."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def forbidden_imports(start: str, read: Callable[[str], str | None] = read_module) -> list[str]:
    """Every way `start` reaches a forbidden module: "a -> b -> c: import torch (line n)"."""
    problems: list[str] = []
    paths: dict[str, list[str]] = {}
    queue = [(m, [m]) for m in _with_parents(start)]
    while queue:
        module, path = queue.pop()
        if module in paths:
            continue
        paths[module] = path
        source = read(module)
        if source is None:
            continue  # not ours: a third-party or standard module, checked by name below
        bad_lines: set[int] = set()
        for imported, line in imports_of(source, top_level_only=module == WORKER_ENTRY):
            if line not in bad_lines and any(imported == bad or imported.startswith(bad + ".") for bad in FORBIDDEN):
                bad_lines.add(line)
                problems.append(f"{' -> '.join(path)}: import {imported} (line {line})")
            for step in _with_parents(imported):
                if step not in paths and read(step) is not None:
                    queue.append((step, [*path, step]))
    return problems


def test_nothing_the_server_can_import_reaches_torch() -> None:
    assert forbidden_imports("codegen_lsp.lsp_server.server") == []


def test_the_walk_reaches_every_room_of_the_server() -> None:
    seen: list[str] = []

    def read(module: str) -> str | None:
        seen.append(module)
        return read_module(module)

    forbidden_imports("codegen_lsp.lsp_server.server", read)
    for module in (
        "codegen_lsp.lsp_server.pipeline.plan",
        "codegen_lsp.lsp_server.backends.local",
        "codegen_lsp.lsp_server.backends.openai",  # imported inside a function: followed all the same
        "codegen_lsp.lsp_server.settings.schema",
        "codegen_lsp.inference.rules.stop_rule",
        "codegen_lsp.inference.checkpoint.hub",
        WORKER_ENTRY,
    ):
        assert module in seen


def test_an_import_of_torch_anywhere_the_server_reaches_is_found() -> None:
    plan = "codegen_lsp.lsp_server.pipeline.plan"
    for added in ("import torch\n", "def f():\n    import transformers\n", "from safetensors.torch import load\n"):

        def read(module: str, added: str = added) -> str | None:
            source = read_module(module)
            return source + "\n" + added if module == plan and source is not None else source

        (problem,) = forbidden_imports("codegen_lsp.lsp_server.server", read)
        assert plan in problem


def test_only_the_worker_entry_is_a_process_boundary() -> None:
    """Its functions' imports (the model, torch) run in the worker; any other module's would run in the server."""
    entry = read_module(WORKER_ENTRY)
    assert entry is not None
    assert any(m == "torch" for m, _ in imports_of(entry)), "the worker entry no longer loads torch itself?"
    assert not any(m == "torch" for m, _ in imports_of(entry, top_level_only=True))
    engine = "codegen_lsp.inference.worker.engine"
    problems = forbidden_imports(engine)
    assert problems and problems[0].startswith(engine)  # the engine itself is not torch-free: never import it


def test_the_product_never_imports_benchmarks_tests_or_scripts() -> None:
    """They live beside the product, not in it (`codegen-lsp bench` runs them in a process of their own)."""
    found = []
    for folder in sorted(FOLDERS):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for imported, line in imports_of(path.read_text()):
                if imported.split(".")[0] in ("benchmarks", "tests", "scripts"):
                    found.append(f"{path.relative_to(ROOT)}:{line}: import {imported}")
    assert found == []


def test_the_benchmarks_docstring_names_every_kind() -> None:
    from benchmarks import __doc__ as listing
    from benchmarks.__main__ import KINDS

    assert listing is not None
    assert [kind for kind in KINDS if kind not in listing] == []


BLOCK_TORCH = """
import sys
for name in ("torch", "transformers", "safetensors.torch"):
    sys.modules[name] = None  # `import torch` now raises ImportError
import importlib
importlib.import_module(sys.argv[1])
"""


@pytest.mark.parametrize("module", TORCH_FREE)
def test_imports_with_torch_blocked(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, module], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_blocker_does_block() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, "codegen_lsp.inference.model.codegen"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "torch" in result.stderr
