"""pygls' private API is reached from one module, `lsp_server/rpc.py`, written for the pygls versions it names:
a pygls upgrade outside that range fails here first, with the file to revisit."""

from __future__ import annotations

import ast
import inspect
import pkgutil
import re
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

import pygls
from packaging.specifiers import SpecifierSet

from codegen_lsp.lsp_server.rpc import PYGLS_VERSIONS

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "lsp_server" / "rpc.py"


def test_the_installed_pygls_is_one_the_adapter_was_written_for() -> None:
    installed = version("pygls")
    assert installed in SpecifierSet(PYGLS_VERSIONS), (
        f"pygls {installed} is installed; lsp_server/rpc.py reaches pygls internals written for pygls"
        f"{PYGLS_VERSIONS}: check each private name it uses against the new pygls, then widen PYGLS_VERSIONS "
        "there and the pygls requirement in pyproject.toml"
    )


def test_pyproject_requires_the_same_pygls_range() -> None:
    (requirement,) = re.findall(r'^\s*"pygls([^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert SpecifierSet(requirement) == SpecifierSet(PYGLS_VERSIONS)


def pygls_private_names() -> set[str]:
    """Every `_name` (not dunder) pygls' classes define or assign on self."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(pygls.__path__, "pygls."):
        try:
            module = import_module(info.name)
        except Exception:  # noqa: BLE001 - optional parts (websockets, pyodide) may not import
            continue
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__.startswith("pygls")):
                continue
            names.update(n for n in dir(cls) if n.startswith("_") and not n.startswith("__"))
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                continue
            names.update(re.findall(r"self\.(_[a-z]\w*)\s*[:=]", source))
    return names


PYGLS_CLASSES = {"LanguageServer", "LanguageServerProtocol", "JsonRPCProtocol", "StreamServer", "CodegenProtocol"}


def private_pygls_uses(source: str, private: set[str]) -> list[tuple[int, str]]:
    """`x._name` for a pygls private name: on any object but `self`, and on `self` too inside a class that
    derives from a pygls class (or from rpc.py's adapters of them)."""
    uses = []

    def visit(node: ast.AST, in_pygls_class: bool) -> None:
        if isinstance(node, ast.ClassDef):
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
            in_pygls_class = bool(bases & PYGLS_CLASSES)
        if isinstance(node, ast.Attribute) and node.attr in private:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not on_self or in_pygls_class:
                uses.append((node.lineno, node.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, in_pygls_class)

    visit(ast.parse(source), False)
    return uses


def test_no_module_but_the_adapter_reaches_pygls_private_names() -> None:
    private = pygls_private_names()
    assert {"_shutdown", "_request_futures", "_send_data"} <= private  # the scan sees pygls' internals
    found = {}
    for path in sorted((ROOT / "lsp_server").rglob("*.py")):
        if path != ADAPTER and (uses := private_pygls_uses(path.read_text(), private)):
            found[str(path.relative_to(ROOT))] = uses
    assert found == {}, "pygls' private API outside lsp_server/rpc.py: go through the adapter"


def test_the_check_sees_a_private_use_and_spares_our_own_names() -> None:
    private = pygls_private_names()
    reaching = "def f(ls):\n    return ls.protocol._shutdown\n"
    subclass = "class S(LanguageServer):\n    def f(self):\n        return self._stop_event\n"
    own = "class Client:\n    def f(self):\n        return self._loop\n"
    assert private_pygls_uses(reaching, private) == [(2, "_shutdown")]
    assert private_pygls_uses(subclass, private) == [(3, "_stop_event")]
    assert private_pygls_uses(own, private) == []
    assert private_pygls_uses(ADAPTER.read_text(), private)  # the adapter itself does reach them
