"""The lexical syntax of the six languages CodeGen was trained on, and one scanner over it.

Completion needs one question answered about a position: is it in code, a comment or a string, and what
closes that? The stop rule asks it in the worker (braces count only in code) and the server's pipeline asks
it at the cursor and over the text right of it, so both live here, next to the stop rule, with no
dependency on the server.

One table row per language (`SYNTAXES`): its line comment, block comment and string forms. The scanner jumps
from one event to the next with regular expressions (it runs over a prompt window on every keystroke):

- comments: `#` (Python) or `//` to the end of the line; `/* ... */` (Javadoc and JSDoc `/** */` too),
  which do not nest in any of these languages;
- strings: one-line forms end at their closing quote or, unterminated, at the line end (a backslash-newline
  continues them); long forms span lines: Python `'''`/`\"\"\"`, Java text blocks `\"\"\"`, Go raw strings
  `` `...` `` (no escapes), JavaScript template literals `` `...` `` whose `${ ... }` holds code (nested
  templates included), C++ raw strings `R"delim( ... )delim"` (no escapes);
- C++14 digit separators (`1'000'000`) are not character literals.

What the scanner does not know: where a string opened before the text it is given (a long string that began
before the prompt window is seen as code), JavaScript regular expression literals (`/"/` opens a string in
its eyes), and Python f-string replacement fields (string text).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "CODE",
    "CLOSERS",
    "OPENERS",
    "SYNTAXES",
    "Lex",
    "LexState",
    "StringForm",
    "Syntax",
    "brackets",
    "scan",
    "syntax_named",
    "walk",
]

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = frozenset(OPENERS.values())
_BRACKETS = frozenset("()[]{}")


class Lex(enum.Enum):
    CODE = "code"
    COMMENT = "comment"  # a line comment: '#' or '//' to the end of the line
    BLOCK_COMMENT = "block_comment"  # /* ... */
    STRING = "string"  # a one-line string or character literal
    LONG_STRING = "long_string"  # a string that may span lines (docstrings, text blocks, templates, raw)


@dataclass(frozen=True)
class StringForm:
    opener: str
    closer: str
    multiline: bool = False
    escapes: bool = True  # a backslash escapes the next character
    interpolation: bool = False  # `${ ... }` holds code (JavaScript template literals)


@dataclass(frozen=True)
class Syntax:
    name: str
    line_comment: str
    block_comment: tuple[str, str] | None = None
    strings: tuple[StringForm, ...] = ()
    raw_strings: bool = False  # C++: (u8|u|U|L)?R"delim( ... )delim"
    digit_separators: bool = False  # C++14: 1'000'000


@dataclass(frozen=True)
class LexState:
    kind: Lex = Lex.CODE
    quote: str | None = None  # what closes the open string or block comment: ', \"\"\", `, )x", */
    opened_at: int | None = None  # index in the scanned text of its opener; None if opened before it
    form: StringForm | None = None  # the open string's form
    templates: tuple[int, ...] = ()  # JavaScript: per `${` we are in, the depth of '{' opened inside it

    @property
    def escapes(self) -> bool:
        """A backslash escapes the next character in what is open (never in a block comment)."""
        return self.form is not None and self.form.escapes


CODE = LexState()

_ONE_LINE = (StringForm("'", "'"), StringForm('"', '"'))
_C = Syntax("c", "//", ("/*", "*/"), _ONE_LINE)
SYNTAXES: dict[str, Syntax] = {
    "python": Syntax(
        "python",
        "#",
        None,
        (StringForm("'''", "'''", multiline=True), StringForm('"""', '"""', multiline=True), *_ONE_LINE),
    ),
    "c": _C,
    "cpp": Syntax("cpp", "//", ("/*", "*/"), _ONE_LINE, raw_strings=True, digit_separators=True),
    "go": Syntax("go", "//", ("/*", "*/"), (*_ONE_LINE, StringForm("`", "`", multiline=True, escapes=False))),
    "java": Syntax("java", "//", ("/*", "*/"), (StringForm('"""', '"""', multiline=True), *_ONE_LINE)),
    "javascript": Syntax(
        "javascript", "//", ("/*", "*/"), (*_ONE_LINE, StringForm("`", "`", multiline=True, interpolation=True))
    ),
}


def syntax_named(name: str) -> Syntax:
    """The syntax of language `name` (a key of SYNTAXES); ValueError for another name."""
    try:
        return SYNTAXES[name]
    except KeyError:
        raise ValueError(f"no syntax for language {name!r}; known: {', '.join(SYNTAXES)}") from None


_RAW_OPENER = r'(?<![A-Za-z0-9_])(?:u8|[uUL])?R"([^()\\\s"]{0,16})\('


@functools.lru_cache(maxsize=64)
def _code_events(syntax: Syntax, with_brackets: bool, in_template: bool) -> re.Pattern[str]:
    """What ends a stretch of plain code: comment and string openers (and brackets, when asked)."""
    alternatives = [re.escape(syntax.line_comment)]
    if syntax.block_comment is not None:
        alternatives.append(re.escape(syntax.block_comment[0]))
    if syntax.raw_strings:
        alternatives.append(_RAW_OPENER)
    openers = sorted({form.opener for form in syntax.strings}, key=len, reverse=True)
    alternatives += [re.escape(opener) for opener in openers]
    if with_brackets:
        alternatives.append(r"[()\[\]{}]")
    elif in_template:
        alternatives.append(r"[{}]")
    return re.compile("|".join(alternatives))


@functools.lru_cache(maxsize=64)
def _body(closer: str, multiline: bool, escapes: bool, interpolation: bool) -> re.Pattern[str]:
    """A string's body up to its closer, an interpolation, a newline ending a one-line string, the end of
    the text, or a backslash that is the last character (its escaped character has not arrived yet)."""
    first, rest = re.escape(closer[0]), re.escape(closer[1:])
    stops = first + ("" if multiline else r"\n") + (r"\\" if escapes else "") + (r"\$" if interpolation else "")
    alternatives = [f"[^{stops}]"]
    if escapes:
        alternatives.append(r"\\[\s\S]")
    if rest:
        alternatives.append(f"{first}(?!{rest})")
    if interpolation:
        alternatives.append(r"\$(?!\{)")
    return re.compile(f"(?:{'|'.join(alternatives)})*")


def _is_digit_separator(text: str, pos: int) -> bool:
    """C++14: a quote inside a number (`1'000`), i.e. after a word that starts with a digit."""
    word_start = pos
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] in "_'."):
        word_start -= 1
    return word_start < pos and text[word_start].isdigit()


def brackets(
    text: str, syntax: Syntax, state: LexState = CODE, *, closers_only: bool = False
) -> Iterator[tuple[int, str]]:
    """Walk `text` from `state`: yield (index, token) for each bracket in code, and for the closer of a
    string or block comment that was open before `text` (its quote, or '*/'). The final state is
    `scan(text, syntax, state)`.

    With `closers_only` only the latter are yielded (what `scan` needs is computed on the way).
    """
    walker = _Walker(text, syntax, state, with_brackets=not closers_only)
    yield from walker.run()


def walk(text: str, syntax: Syntax, state: LexState = CODE) -> tuple[list[tuple[int, str]], LexState]:
    """`brackets(text, syntax, state)` as a list, and the state at the end of `text`."""
    walker = _Walker(text, syntax, state, with_brackets=True)
    events = list(walker.run())
    return events, walker.state


def scan(text: str, syntax: Syntax, state: LexState = CODE) -> LexState:
    """The lexical state at the end of `text`, given the state at its start."""
    walker = _Walker(text, syntax, state, with_brackets=False)
    for _ in walker.run():
        pass
    return walker.state


class _Walker:
    def __init__(self, text: str, syntax: Syntax, state: LexState, *, with_brackets: bool) -> None:
        self.text, self.syntax, self.state, self.with_brackets = text, syntax, state, with_brackets
        # A template we are in that opened before the text: its closing backtick closes something outside.
        self.outer_templates = len(state.templates)
        self.outer_open = state.kind in (Lex.STRING, Lex.LONG_STRING, Lex.BLOCK_COMMENT)
        if state.kind in (Lex.STRING, Lex.LONG_STRING) and state.form is None:  # a state built by hand
            multiline = state.kind is Lex.LONG_STRING
            form = next(
                (f for f in syntax.strings if f.closer == state.quote and f.multiline == multiline),
                StringForm(state.quote or "", state.quote or "", multiline),
            )
            self.state = LexState(state.kind, state.quote, state.opened_at, form, state.templates)

    def run(self) -> Iterator[tuple[int, str]]:
        text, syntax, end = self.text, self.syntax, len(self.text)
        kind, quote, opened, form = self.state.kind, self.state.quote, self.state.opened_at, self.state.form
        templates = list(self.state.templates)  # changed in place: a tuple copied per `${` made nesting quadratic
        plain_code = _code_events(syntax, self.with_brackets, False).search
        template_code = _code_events(syntax, self.with_brackets, True).search
        pos = 0
        try:
            while pos < end:
                if kind is Lex.CODE:
                    match = (template_code if templates else plain_code)(text, pos)
                    if match is None:
                        pos = end
                        break
                    token, at = match.group(), match.start()
                    pos = match.end()
                    if token == syntax.line_comment:
                        kind, opened = Lex.COMMENT, at
                    elif syntax.block_comment is not None and token == syntax.block_comment[0]:
                        kind, quote, opened = Lex.BLOCK_COMMENT, syntax.block_comment[1], at
                    elif token in _BRACKETS:
                        if templates and token == "{":
                            templates[-1] += 1
                        elif templates and token == "}":
                            if templates[-1] == 0:  # closes `${`: back into the template literal
                                templates.pop()
                                kind, quote, form = Lex.LONG_STRING, "`", _TEMPLATE
                                opened = None
                                if len(templates) < self.outer_templates:
                                    self.outer_templates = len(templates)
                                    self.outer_open = True
                            else:
                                templates[-1] -= 1
                        if self.with_brackets:
                            yield at, token
                    elif match.lastindex:  # a C++ raw string: R"delim(
                        kind, quote, opened, form = Lex.LONG_STRING, f'){match.group(1)}"', at, _RAW
                    elif token == "'" and syntax.digit_separators and _is_digit_separator(text, at):
                        continue
                    else:
                        form = next(f for f in syntax.strings if f.opener == token)
                        kind = Lex.LONG_STRING if form.multiline else Lex.STRING
                        quote, opened = form.closer, at
                elif kind is Lex.COMMENT:
                    newline = text.find("\n", pos)
                    if newline < 0:
                        pos = end
                        break
                    kind, opened, pos = Lex.CODE, None, newline + 1
                elif kind is Lex.BLOCK_COMMENT:
                    assert quote is not None
                    close = text.find(quote, pos)
                    if close < 0:
                        pos = end
                        break
                    if self.outer_open:
                        self.outer_open = False
                        yield close, quote
                    kind, quote, opened, pos = Lex.CODE, None, None, close + len(quote)
                else:
                    assert quote is not None and form is not None
                    pos = _body(quote, form.multiline, form.escapes, form.interpolation).match(text, pos).end()
                    if pos >= end:
                        break
                    if text.startswith(quote, pos):
                        if self.outer_open:
                            self.outer_open = False
                            yield pos, quote
                        kind, quote, opened, form, pos = Lex.CODE, None, None, None, pos + len(quote)
                    elif form.interpolation and text.startswith("${", pos):
                        if self.with_brackets:
                            yield pos + 1, "{"
                        kind, quote, opened, form = Lex.CODE, None, None, None
                        templates.append(0)
                        pos += 2
                    elif text[pos] == "\n" and not form.multiline:  # unterminated: ends at the line end
                        self.outer_open = False
                        kind, quote, opened, form, pos = Lex.CODE, None, None, None, pos + 1
                    else:  # a trailing backslash, or the start of a closer still arriving
                        break
        finally:
            self.state = LexState(kind, quote, opened, form, tuple(templates))


_TEMPLATE = next(f for f in SYNTAXES["javascript"].strings if f.interpolation)
_RAW = StringForm('R"(', ')"', multiline=True, escapes=False)
