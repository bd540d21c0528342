"""`.gitignore` rules, enough of git's syntax for a workspace walk: globs, `**`, `!` negation, a trailing `/`
(folders only) and a `/` inside or in front (anchored to the .gitignore's folder). Each folder's .gitignore
applies below it, later rules win, as in git."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ALWAYS_SKIPPED", "IgnoreRules", "Rule", "parse_gitignore"]

# Never indexed, whatever .gitignore says: version control, dependencies and caches.
ALWAYS_SKIPPED = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".cache"}
)


@dataclass(frozen=True)
class Rule:
    base: str  # the folder of its .gitignore, relative to the workspace root ("" at the root), "/"-separated
    pattern: re.Pattern[str]
    negated: bool
    folders_only: bool


def _glob_to_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_gitignore(text: str, base: str = "") -> list[Rule]:
    """The rules of one .gitignore in folder `base` (relative to the root)."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        folders_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _glob_to_regex(line)
        regex = ("" if anchored else "(?:.*/)?") + body + "$"
        rules.append(Rule(base, re.compile(regex), negated, folders_only))
    return rules


class IgnoreRules:
    """The rules in force in one folder: its parents' and its own."""

    def __init__(self, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = rules

    def below(self, gitignore_text: str | None, base: str) -> IgnoreRules:
        """The rules for folder `base`, which has this .gitignore text (None: none)."""
        if not gitignore_text:
            return self
        return IgnoreRules(self.rules + tuple(parse_gitignore(gitignore_text, base)))

    def ignored(self, path: str, is_folder: bool) -> bool:
        """Whether `path` (relative to the root, "/"-separated) is ignored."""
        if path.rsplit("/", 1)[-1] in ALWAYS_SKIPPED:
            return True
        verdict = False
        for rule in self.rules:
            if rule.folders_only and not is_folder:
                continue
            if rule.base:
                if not path.startswith(rule.base + "/"):
                    continue
                relative = path[len(rule.base) + 1 :]
            else:
                relative = path
            if rule.pattern.match(relative):
                verdict = not rule.negated
        return verdict
