"""What a file imports, resolved to files of the workspace index. Regular expressions over the text, not a
parser: the file is being typed and rarely parses.

- Python: `import a.b`, `from a.b import c, d`, `from . import c`, `from ..a import b` (relative to the file's
  package; absolute ones to any indexed `a/b.py` or `a/b/__init__.py`, and `a/b/c.py` for a submodule `c`);
- C and C++: `#include "x.h"` (the file's folder first, then any indexed `.../x.h`), never `<x.h>`;
- Go: the other files of the same package (the file's folder), then imports whose path ends in an indexed folder;
- Java: `import a.b.C;` and `import a.b.*;`, then the same package (the file's folder);
- JavaScript: relative `import ... from './x'`, `import('./x')` and `require('./x')`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Import", "KnownFiles", "resolve_imports"]

MAX_IMPORTED_FILES = 16
_JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx")


class KnownFiles(Protocol):
    files: Mapping[Path, object]
    by_suffix: Mapping[str, Sequence[Path]]


@dataclass(frozen=True)
class Import:
    path: Path
    names: tuple[str, ...] = ()  # what is imported from it by name (its declarations of them come first)


def resolve_imports(text: str, path: Path, language: str, known: KnownFiles) -> list[Import]:
    """The indexed files `text` (the file at `path`) imports, in the order it imports them, at most
    MAX_IMPORTED_FILES, never the file itself."""
    resolver = _RESOLVERS.get(language)
    found = resolver(text, Path(path), known) if resolver else []
    seen, unique = {Path(path)}, []
    for item in found:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    return unique[:MAX_IMPORTED_FILES]


def _ending_with(known: KnownFiles, parts: Sequence[str]) -> list[Path]:
    """Indexed files whose path ends with `parts`, nearest (shortest) first."""
    suffix = tuple(parts)
    matches = [p for p in known.by_suffix.get(suffix[-1], ()) if p.parts[-len(suffix) :] == suffix]
    return sorted(matches, key=lambda p: (len(p.parts), str(p)))


def _first(known: KnownFiles, candidates: Sequence[Path]) -> Path | None:
    return next((c for c in candidates if c in known.files), None)


# -- Python --------------------------------------------------------------------------------------------------

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)?|[^\n#;]*)", re.M)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]+)", re.M)


def _python_module(known: KnownFiles, path: Path, level: int, module: str) -> Path | None:
    parts = [p for p in module.split(".") if p]
    if level:
        base = path.parent
        for _ in range(level - 1):
            base = base.parent
        target = base.joinpath(*parts) if parts else base
        return _first(known, [target.with_suffix(".py"), target / "__init__.py"] if parts else [base / "__init__.py"])
    if not parts:
        return None
    for candidate in (parts[:-1] + [parts[-1] + ".py"], parts + ["__init__.py"]):
        matches = _ending_with(known, candidate)
        if matches:
            return matches[0]
    return None


def _python(text: str, path: Path, known: KnownFiles) -> list[Import]:
    found: list[tuple[int, Import]] = []
    for match in _PY_FROM.finditer(text):
        level, module = len(match.group(1)), match.group(2)
        names = tuple(
            name.split()[0] for name in match.group(3).strip("()").replace("\n", " ").split(",") if name.strip()
        )
        resolved = _python_module(known, path, level, module)
        if resolved is not None and resolved.name != "__init__.py":
            found.append((match.start(), Import(resolved, names)))
            continue
        # a package (or nothing found): its names may be submodules
        rest = []
        for name in names:
            sub = _python_module(known, path, level, f"{module}.{name}" if module else name)
            if sub is not None:
                found.append((match.start(), Import(sub)))
            else:
                rest.append(name)
        if resolved is not None and rest:
            found.append((match.start(), Import(resolved, tuple(rest))))
    for match in _PY_IMPORT.finditer(text):
        for item in match.group(1).split(","):
            module = item.split()[0] if item.split() else ""
            resolved = _python_module(known, path, 0, module)
            if resolved is not None:
                found.append((match.start(), Import(resolved)))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


# -- C and C++ -----------------------------------------------------------------------------------------------

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.M)


def _c(text: str, path: Path, known: KnownFiles) -> list[Import]:
    found = []
    for match in _INCLUDE.finditer(text):
        name = match.group(1)
        local = _first(known, [(path.parent / name).resolve()])
        resolved = local or next(iter(_ending_with(known, Path(name).parts)), None)
        if resolved is not None:
            found.append(Import(resolved))
    return found


# -- Go ------------------------------------------------------------------------------------------------------

_GO_IMPORT_BLOCK = re.compile(r"^import[ \t]*\(([^)]*)\)", re.M)
_GO_IMPORT_LINE = re.compile(r'^import[ \t]+(?:\w+[ \t]+)?"([^"]+)"', re.M)
_QUOTED = re.compile(r'"([^"]+)"')


def _same_folder(path: Path, known: KnownFiles, suffix: str, skip_tests: bool) -> list[Import]:
    siblings = sorted(p for p in known.files if p.parent == path.parent and p.suffix == suffix and p != path)
    return [Import(p) for p in siblings if not (skip_tests and p.stem.endswith("_test"))]


def _folders_ending(known: KnownFiles, parts: Sequence[str], suffix: str) -> list[Path]:
    tail = tuple(parts)
    return sorted(p for p in known.files if p.suffix == suffix and p.parent.parts[-len(tail) :] == tail)


def _go(text: str, path: Path, known: KnownFiles) -> list[Import]:
    found = _same_folder(path, known, ".go", skip_tests=not path.stem.endswith("_test"))
    paths = [m.group(1) for m in _GO_IMPORT_LINE.finditer(text)]
    for block in _GO_IMPORT_BLOCK.finditer(text):
        paths.extend(_QUOTED.findall(block.group(1)))
    for imported in paths:
        parts = imported.split("/")[-2:]
        found.extend(Import(p) for p in _folders_ending(known, parts, ".go") if not p.stem.endswith("_test"))
    return found


# -- Java ----------------------------------------------------------------------------------------------------

_JAVA_IMPORT = re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?([\w.]+)(\.\*)?[ \t]*;", re.M)


def _java(text: str, path: Path, known: KnownFiles) -> list[Import]:
    found = []
    for match in _JAVA_IMPORT.finditer(text):
        parts = match.group(1).split(".")
        if match.group(2):
            found.extend(Import(p) for p in _folders_ending(known, parts, ".java"))
            continue
        # a class (a.b.C), or a static member (a.b.C.name): the file is the first part that names one
        for end in (len(parts), len(parts) - 1):
            matches = _ending_with(known, parts[: end - 1] + [parts[end - 1] + ".java"]) if end > 0 else []
            if matches:
                found.append(Import(matches[0], (parts[-1],) if end < len(parts) else ()))
                break
    return found + _same_folder(path, known, ".java", skip_tests=False)


# -- JavaScript ----------------------------------------------------------------------------------------------

_JS_SPECIFIER = re.compile(
    r"""(?:\bfrom[ \t]*|\bimport[ \t]*\(?[ \t]*|\brequire[ \t]*\([ \t]*)["'](\.{1,2}/[^"'\n]+)["']"""
)


def _javascript(text: str, path: Path, known: KnownFiles) -> list[Import]:
    found = []
    for match in _JS_SPECIFIER.finditer(text):
        target = path.parent / match.group(1)
        candidates = [target] + [target.with_name(target.name + ext) for ext in _JS_EXTENSIONS]
        candidates += [target / f"index{ext}" for ext in _JS_EXTENSIONS]
        resolved = _first(known, [Path(os.path.normpath(c)) for c in candidates])
        if resolved is not None:
            found.append(Import(resolved))
    return found


_RESOLVERS = {
    "python": _python,
    "c": _c,
    "cpp": _c,
    "go": _go,
    "java": _java,
    "javascript": _javascript,
}
