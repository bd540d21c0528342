"""A file's outline: its declarations (signatures, classes with their methods and fields, constants), the
densest form of "what this file defines" for a snippet of an imported file (as Tabby's declaration snippets).

An outline is a list of blocks, one per top-level declaration with the nested declarations under it (a class
and its methods). Python files are read with `ast` when they parse, else, like the other languages, by
regular expressions over lines.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Block", "outline", "ordered_for"]


@dataclass(frozen=True)
class Block:
    name: str  # what it declares ("" when unknown)
    text: str  # its lines, bodies left out


def outline(text: str, language: str) -> list[Block]:
    if language == "python":
        try:
            return _python_ast(text)
        except (SyntaxError, ValueError, RecursionError):
            pass
    return _by_lines(text, _DECLARATION[language] if language in _DECLARATION else _DECLARATION["c"])


def ordered_for(blocks: Sequence[Block], names: Sequence[str]) -> list[Block]:
    """The blocks declaring `names` first (in the order of `names`), then the others in file order."""
    wanted = {name: i for i, name in enumerate(names)}
    first = sorted((b for b in blocks if b.name in wanted), key=lambda b: wanted[b.name])
    return first + [b for b in blocks if b.name not in wanted]


# -- Python, parsed ------------------------------------------------------------------------------------------


def _signature(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    """The declaration's header as written (decorators left out), up to the colon that opens its body."""
    first = node.lineno - 1
    body_line = node.body[0].lineno - 1 if node.body else first
    header = lines[first : max(body_line, first + 1)]
    text = "\n".join(header).rstrip()
    if not text.endswith(":"):  # a one-line body on the same line: cut it off
        colon = text.rfind(":")
        text = text[: colon + 1] if colon > 0 else text
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip() and not line.strip().startswith("#"))


def _docstring_line(node: ast.AST, indent: str) -> list[str]:
    doc = ast.get_docstring(node, clean=True) if isinstance(node, ast.FunctionDef | ast.ClassDef) else None
    if not doc:
        return []
    return [f'{indent}"""{doc.strip().splitlines()[0][:100]}"""']


def _python_ast(text: str) -> list[Block]:
    tree = ast.parse(text)
    lines = text.split("\n")
    blocks = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            blocks.append(Block(node.name, _signature(lines, node)))
        elif isinstance(node, ast.ClassDef):
            parts = [_signature(lines, node), *_docstring_line(node, " " * (node.col_offset + 4))]
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    parts.append(_signature(lines, member))
                elif isinstance(member, ast.AnnAssign | ast.Assign) and member.end_lineno == member.lineno:
                    parts.append(lines[member.lineno - 1].rstrip())
            blocks.append(Block(node.name, "\n".join(parts)))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.end_lineno == node.lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if names and not names[0].startswith("__"):
                blocks.append(Block(names[0], lines[node.lineno - 1].rstrip()[:160]))
    return blocks


# -- Other languages (and Python that does not parse), by lines ----------------------------------------------

_KEYWORDS = r"(?:if|for|while|switch|catch|else|try|do|return|new|throw|case|sizeof|defer|go|select)\b"
_DECLARATION = {
    "python": re.compile(r"^\s*(?:async\s+def|def|class)\s+(\w+)|^([A-Z_][A-Z0-9_]*)\s*[:=]"),
    # a function header, a type, a macro at the top level (any indentation inside a class or namespace)
    "c": re.compile(
        rf"^(?!\s*{_KEYWORDS})\s*(?:#\s*define\s+(\w+)|(?:typedef\s+)?(?:struct|enum|union|class|namespace)\s+(\w+)"
        r"|[A-Za-z_][\w\s\*&:<>,~]*?\b(\w+)\s*\([^;{]*\)?\s*(?:const\s*)?[;{]?\s*$)"
    ),
    "go": re.compile(
        r"^(?:func\s+(?:\([^)]*\)\s*)?(\w+)|type\s+(\w+)|const\s+(\w+)|var\s+(\w+))"
        rf"|^\t(?!{_KEYWORDS})(\w+)\s+[\w\*\[\]\.]+\s*(?:`[^`]*`)?\s*$"
    ),
    "java": re.compile(
        rf"^(?!\s*{_KEYWORDS})\s*(?:@\w+\s+)*(?:(?:public|protected|private|static|final|abstract|synchronized|"
        r"default|native)\s+)*(?:(?:class|interface|enum|record)\s+(\w+)|[\w<>\[\],\s\.?]+?\s(\w+)\s*\([^;]*$"
        r"|[\w<>\[\],\.?]+\s+(\w+)\s*(?:=[^;]*)?;\s*$)"
    ),
    "javascript": re.compile(
        r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\*?\s+(\w+)|class\s+(\w+)"
        r"|(?:const|let|var)\s+(\w+)\s*=)"
        rf"|^(?!\s*{_KEYWORDS})\s+(?:static\s+)?(?:async\s+)?(?:get\s+|set\s+)?(\w+)\s*\([^)]*\)\s*\{{"
    ),
}
_DECLARATION["cpp"] = _DECLARATION["c"]


def _by_lines(text: str, pattern: re.Pattern[str]) -> list[Block]:
    blocks: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith(("//", "/*", "*")) or stripped[0] == "#" and "define" not in stripped:
            continue
        match = pattern.match(line)
        if match is None:
            continue
        name = next((g for g in match.groups() if g), "")
        shown = line.rstrip()[:160]
        if not line[:1].isspace() or not blocks:  # a top-level declaration starts a block
            blocks.append((name, [shown]))
        else:
            blocks[-1][1].append(shown)
    return [Block(name, "\n".join(lines)) for name, lines in blocks]
