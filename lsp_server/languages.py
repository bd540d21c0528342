"""The languages CodeGen was trained on, one table row each: what the pipeline needs to know about them.

CodeGen comes in three data variants: `nl` (The Pile), `multi` (then BigQuery: C, C++, Go, Java, JavaScript
and Python) and `mono` (then Python only). The `languages` setting says which LSP language ids get
completions; "auto" follows the model: Python for a `-mono` model (and the bundled one, trained on Python),
all six for the others and for local models whose name says neither.

Stop patterns, after CodeGen's Python ones (a new top-level comment, `<|endoftext|>`, three newlines) and the
stop sequences of MultiPL-E (Go `\\nfunc`, `\\n// `; JavaScript `\\nfunction `, `\\n/*`, `\\n//`,
`\\nconsole.log`; C++ `\\n}`): each brace language stops at a new top-level `//` or `/*` comment, at
`<|endoftext|>` and at three newlines; Go before a second top-level `func`, JavaScript before a second
top-level `function` or `console.log` (the analogue of transformers' second `def` / `print`). MultiPL-E's
`\\n}` is the brace rule of the stop rule (the end of the cursor's block, or of a top-level block). All of
them are literal, so the worker decides them token by token. Python keeps CodeGen's patterns, which the
`truncateBeforePattern` setting replaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from codegen_lsp.inference.rules.syntax import SYNTAXES, Syntax
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN, TRANSFORMERS_MARKERS

__all__ = [
    "AUTO",
    "LANGUAGES",
    "LANGUAGE_IDS",
    "Language",
    "canonical_language_id",
    "enabled_language_ids",
    "language_for_id",
    "language_for_path",
    "languages_for_model",
]

AUTO = "auto"


@dataclass(frozen=True)
class Language:
    name: str  # the syntax name (inference.rules.syntax.SYNTAXES)
    title: str
    language_ids: tuple[str, ...]  # LSP language ids that mean it; the first ones are setting values
    extensions: tuple[str, ...]
    stop_patterns: tuple[str, ...]  # the truncation patterns (Python: the `truncateBeforePattern` setting)
    markers: tuple[str, ...]  # cut before a second line starting with each of these
    braces: bool  # blocks are braces (else indentation, Python)
    identifier_extra: str = ""  # characters besides letters, digits and '_' that continue an identifier

    @property
    def syntax(self) -> Syntax:
        return SYNTAXES[self.name]


_BRACE_PATTERNS = ("^//", r"^/\*", re.escape("<|endoftext|>"), "\n\n\n")

LANGUAGES: dict[str, Language] = {
    language.name: language
    for language in (
        Language(
            "python", "Python", ("python", "python3", "py", "python-ts"), (".py", ".pyi", ".pyw"),
            DEFAULT_TRUNCATE_BEFORE_PATTERN, TRANSFORMERS_MARKERS, braces=False,
        ),
        Language("c", "C", ("c",), (".c", ".h"), _BRACE_PATTERNS, (), braces=True),
        Language(
            "cpp", "C++", ("cpp", "c++"),
            (".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp"),
            _BRACE_PATTERNS, (), braces=True,
        ),
        Language("go", "Go", ("go", "golang"), (".go",), _BRACE_PATTERNS, ("func",), braces=True),
        Language("java", "Java", ("java",), (".java",), _BRACE_PATTERNS, (), braces=True, identifier_extra="$"),
        Language(
            "javascript", "JavaScript", ("javascript", "javascriptreact", "js", "jsx"),
            (".js", ".mjs", ".cjs", ".jsx"), _BRACE_PATTERNS, ("console.log", "function"), braces=True,
            identifier_extra="$",
        ),
    )
}  # fmt: skip

# The values the `languages` setting takes (the LSP ids editors send for the six languages).
LANGUAGE_IDS: tuple[str, ...] = ("c", "cpp", "go", "java", "javascript", "javascriptreact", "python")
_CANONICAL = {
    **{alias: language.language_ids[0] for language in LANGUAGES.values() for alias in language.language_ids},
    "javascriptreact": "javascriptreact",
    "jsx": "javascriptreact",
}
_BY_ID = {alias: language for language in LANGUAGES.values() for alias in language.language_ids}
_BY_EXTENSION = {ext: language for language in LANGUAGES.values() for ext in language.extensions}


def canonical_language_id(language_id: str | None) -> str | None:
    """The `languages` setting value an LSP language id stands for ("python3" -> "python"), else None."""
    return _CANONICAL.get((language_id or "").strip().lower())


def language_for_id(language_id: str | None) -> Language | None:
    return _BY_ID.get((language_id or "").strip().lower())


def language_for_path(path: str | PurePath) -> Language | None:
    """The language a file's extension says, else None."""
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def languages_for_model(model: str) -> tuple[str, ...]:
    """What "auto" means for `model`: Python for CodeGen-mono and the bundled model, else all six."""
    name = model.strip().lower().rstrip("/")
    if name == "bundled" or re.search(r"-mono(\b|$|[-_.])", name):
        return ("python",)
    return LANGUAGE_IDS


def enabled_language_ids(setting: str | Sequence[str], model: str) -> frozenset[str]:
    """The canonical language ids that get completions, from the `languages` setting and the model."""
    if isinstance(setting, str):
        return frozenset(languages_for_model(model)) if setting == AUTO else frozenset()
    return frozenset(filter(None, (canonical_language_id(language_id) for language_id in setting)))
