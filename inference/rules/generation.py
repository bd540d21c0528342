"""What every backend asks of a model the same way, so that the local engine and a remote server answer alike:
how many prompt tokens fit, which token an empty prompt starts from, how each candidate is sampled, and which
candidates are kept. Torch-free: the worker's engine and the server's remote backend both use them."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from codegen_lsp.inference.protocol import ALTERNATIVE_TEMPERATURE, Candidate, GenerationOptions

T = TypeVar("T")


def prompt_budget(context_tokens: int, max_new_tokens: int, n_positions: int) -> int:
    """The prompt's token budget: the `contextTokens` asked for, less than the model's context by what is to be
    generated, and never below one token."""
    return max(1, min(context_tokens, n_positions - max_new_tokens))


def prompt_or_bos(prompt_ids: list[int], bos_token_id: int | None) -> list[int]:
    """An empty prompt (an empty document) starts from <|endoftext|>, as CodeGen was trained (token 0 when the
    config names none)."""
    if prompt_ids:
        return prompt_ids
    return [bos_token_id if bos_token_id is not None else 0]


@dataclass(frozen=True)
class Sampling:
    """How one candidate is drawn: temperature 0 is greedy."""

    temperature: float
    seed: int | None


def candidate_samplings(options: GenerationOptions) -> tuple[Sampling, ...]:
    """One per candidate, the primary first. A greedy request's other candidates are sampled at
    ALTERNATIVE_TEMPERATURE; candidate i takes the seed `seed + i`, so each is reproducible and they differ."""
    samplings = []
    for index in range(max(1, options.num_candidates)):
        temperature = options.temperature
        if index > 0 and temperature <= 0:
            temperature = ALTERNATIVE_TEMPERATURE
        samplings.append(Sampling(temperature, None if options.seed is None else options.seed + index))
    return tuple(samplings)


def first_of_each(items: Iterable[T], key: Callable[[T], Hashable] = lambda item: item) -> list[T]:
    """`items` without repeats (by `key`), the first of each kept, in order."""
    seen: set[Hashable] = set()
    kept = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept


def unique_candidates(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """Candidates with the same text are one suggestion: the first (the primary, or the earlier) is kept."""
    return tuple(first_of_each(candidates, key=lambda candidate: candidate.text))
