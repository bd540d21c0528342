"""What a setting accepts: one class per kind of value, each saying in one place how it is described (warnings,
the README), checked (parsing) and typed for VS Code (`package.json`). A new kind of value is one class here."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codegen_lsp.lsp_server.languages import AUTO, LANGUAGE_IDS, canonical_language_id
from codegen_lsp.tokenizer.truncation import compile_patterns

__all__ = [
    "Accepts",
    "Boolean",
    "Choice",
    "Integer",
    "Invalid",
    "Languages",
    "Number",
    "OptionalInteger",
    "OptionalText",
    "Patterns",
    "Text",
    "shown",
]


class Invalid(Exception):
    """A value a setting does not accept; the message says what it expected."""


class Accepts:
    """One kind of value. `nullable`: null is a value of its own (else a null keeps the current value)."""

    nullable = False

    def describe(self) -> str:
        """In words, for warnings and the README: "an integer from 1 to 8"."""
        raise NotImplementedError

    def check(self, value: object) -> object:
        """The value to use; raises Invalid."""
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema keywords of a VS Code setting: "type" first, then its constraints."""
        raise NotImplementedError

    def _invalid(self) -> Invalid:
        return Invalid(f"expected {self.describe()}")


@dataclass(frozen=True)
class Text(Accepts):
    refuse: Callable[[str], str | None] | None = None  # a further check: None, or why the value cannot work

    def describe(self) -> str:
        return "a non-empty string"

    def check(self, value: object) -> object:
        if isinstance(value, str) and value.strip():
            why = self.refuse(value.strip()) if self.refuse is not None else None
            if why is not None:
                raise Invalid(why)
            return value.strip()
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True)
class OptionalText(Accepts):
    nullable = True

    def describe(self) -> str:
        return "a string, or null"

    def check(self, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str):
            return value.strip() or None
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"]}


@dataclass(frozen=True)
class Choice(Accepts):
    choices: tuple[str, ...]

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", choices)

    def describe(self) -> str:
        return ", ".join(f'"{c}"' for c in self.choices[:-1]) + f' or "{self.choices[-1]}"'

    def check(self, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in self.choices:
            return value.strip().lower()
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class Boolean(Accepts):
    def describe(self) -> str:
        return "true or false"

    def check(self, value: object) -> object:
        if isinstance(value, bool):
            return value
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Patterns(Accepts):
    """Regular expressions (the stop patterns): each must compile."""

    def describe(self) -> str:
        return "a list of regular expressions (Python syntax)"

    def check(self, value: object) -> object:
        if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
            try:
                compile_patterns(value)
            except ValueError as error:
                raise Invalid(str(error)) from None
            return tuple(value)
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}


@dataclass(frozen=True)
class Languages(Accepts):
    """`auto`, or LSP language ids (aliases become the canonical id; repeats are dropped)."""

    def describe(self) -> str:
        return f'"{AUTO}", or a list of language ids: ' + ", ".join(f'"{i}"' for i in LANGUAGE_IDS)

    def check(self, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        if isinstance(value, list | tuple) and all(isinstance(i, str) for i in value):
            unknown = [i for i in value if canonical_language_id(i) is None]
            if not unknown:
                return tuple(dict.fromkeys(canonical_language_id(i) for i in value))
            raise Invalid(f"unknown language id(s) {shown(unknown)}; expected {self.describe()}")
        raise self._invalid()

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "array"], "items": {"type": "string", "enum": list(LANGUAGE_IDS)}}


@dataclass(frozen=True)
class Number(Accepts):
    """A finite number in [low, high] (or (low, high] when `low_open`)."""

    low: float
    high: float
    low_open: bool = False  # low itself is not allowed

    noun = "a number"
    json_type = "number"

    def describe(self) -> str:
        if self.low_open:
            return f"{self.noun} greater than {_number(self.low)} and at most {_number(self.high)}"
        return f"{self.noun} from {_number(self.low)} to {_number(self.high)}"

    def check(self, value: object) -> object:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise self._invalid()
        value = self._convert(value)
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high:
            raise self._invalid()
        return value

    def _convert(self, value: float) -> float:
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": self.json_type,
            ("exclusiveMinimum" if self.low_open else "minimum"): self.low,
            "maximum": self.high,
        }


@dataclass(frozen=True)
class Integer(Number):
    noun = "an integer"
    json_type = "integer"

    def _convert(self, value: float) -> float:
        if value != int(value):
            raise self._invalid()
        return int(value)


@dataclass(frozen=True)
class OptionalInteger(Integer):
    nullable = True

    def describe(self) -> str:
        return f"an integer from {_number(self.low)} to {_number(self.high)}, or null"

    def check(self, value: object) -> object:
        return None if value is None else super().check(value)

    def json_schema(self) -> dict[str, Any]:
        return {**super().json_schema(), "type": ["integer", "null"]}


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def shown(value: object, limit: int = 80) -> str:
    """A value as the person wrote it in their JSON settings."""
    try:
        text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
