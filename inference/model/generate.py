"""Prefill, decode and sampling: the token-by-token loop around the model and its static KV cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from codegen_lsp.inference.model.codegen import CodeGen
from codegen_lsp.inference.model.kv_cache import KVCache
from codegen_lsp.inference.protocol import StopReason


@torch.inference_mode()
def prefill(
    model: CodeGen, tokens: Tensor, start: int, cache: KVCache, interrupted: Callable[[], bool] | None = None
) -> Tensor | None:
    """Run tokens (T,) at positions start..start+T-1 into the cache; logits of the last one, (V,) fp32. None when
    `interrupted` (asked between blocks) said stop: positions start.. are then not usable."""
    input_pos = torch.arange(start, start + tokens.numel(), device=tokens.device)  # (T,)
    logits = model(tokens[None], input_pos, cache, last_only=True, interrupted=interrupted)  # (1, 1, V)
    return None if logits is None else logits[0, -1].float()


@torch.inference_mode()
def decode_one(model: CodeGen, token: Tensor, input_pos: Tensor, cache: KVCache) -> Tensor:
    """One step: token (1, 1) at input_pos (1,). Returns the next-token logits (V,) fp32."""
    return model(token, input_pos, cache)[0, -1].float()


@dataclass(frozen=True)
class Sampler:
    """Greedy when temperature is 0, else temperature + nucleus (top-p) sampling from a seeded generator."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def make_generator(self, device: torch.device) -> torch.Generator | None:
        if self.temperature <= 0:
            return None
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed if self.seed is not None else torch.seed())
        return generator

    def __call__(self, logits: Tensor, generator: torch.Generator | None) -> int:
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)  # (V,)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > self.top_p  # keep the smallest set reaching top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class Generation:
    token_ids: list[int]
    stop_reason: StopReason
    forward_passes: int
    fed: int  # how many of token_ids have their keys/values in the cache (positions start .. start+fed-1)


class NgramDrafter:
    """Prompt-lookup drafts: when the last tokens occurred before, propose the `k` tokens that followed them then.

    The longest match wins, from `longest` tokens down to `shortest`; at each length the match is looked up first
    in `previous` (what the model wrote for this document last time: after a keystroke the new suggestion often
    realigns with the old one), then in the history (the prompt and what was generated). An overlapping match in
    the history continues the copy, so a repeating pattern drafts its own continuation."""

    def __init__(
        self, tokens: list[int], k: int = 8, previous: Sequence[int] = (), longest: int = 3, shortest: int = 2
    ) -> None:
        self.k = k
        self.lengths = range(longest, shortest - 1, -1)
        self.tokens = list(tokens)
        self.previous = list(previous)
        self._end_of: dict[tuple[int, ...], int] = {}  # n-gram -> end of its latest occurrence before the tail
        self._previous_end_of: dict[tuple[int, ...], int] = {}  # n-gram -> end of its first occurrence
        for n in self.lengths:
            for end in range(n, len(self.tokens)):
                self._end_of[tuple(self.tokens[end - n : end])] = end
            for end in range(len(self.previous) - 1, n - 1, -1):
                self._previous_end_of[tuple(self.previous[end - n : end])] = end

    def append(self, token: int) -> None:
        end = len(self.tokens)
        for n in self.lengths:
            if end >= n:
                self._end_of[tuple(self.tokens[end - n : end])] = end
        self.tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        if limit <= 0:
            return []
        for n in self.lengths:
            if len(self.tokens) < n:
                continue
            tail = tuple(self.tokens[-n:])
            if (end := self._previous_end_of.get(tail)) is not None:
                return self.previous[end : end + min(self.k, limit)]
            if (end := self._end_of.get(tail)) is not None:
                length, draft = len(self.tokens), []
                for i in range(min(self.k, limit)):
                    j = end + i
                    draft.append(self.tokens[j] if j < length else draft[j - length])
                return draft
        return []


def decode_loop(
    model: CodeGen,
    cache: KVCache,
    first_logits: Tensor,
    start: int,
    max_new_tokens: int,
    sampler: Sampler,
    eos_ids: tuple[int, ...],
    on_token: Callable[[int], bool] | None = None,
    cancelled: Callable[[], bool] | None = None,
    step: Callable[[Tensor, Tensor], Tensor] | None = None,
    drafter: NgramDrafter | None = None,
) -> Generation:
    """Generate after a prefilled prompt of `start` tokens whose last logits are `first_logits`.

    on_token(token) is called for each new token; returning True stops there (the stop rule). The last new
    token is not fed back unless a verified draft already fed it (Generation.fed says how many were).
    `step(token (1,1), input_pos (1,))` replaces decode_one (a captured CUDA graph, say).
    With a drafter (greedy only), a proposed continuation is checked in one forward pass: the drafted tokens
    that equal the model's own greedy choices are kept, plus the model's choice after them, so the output is
    the greedy output, in fewer passes.
    """
    device = first_logits.device
    generator = sampler.make_generator(device)
    step = step or (lambda token, pos: decode_one(model, token, pos, cache))
    if sampler.temperature > 0:
        drafter = None
    tokens: list[int] = []
    decided: list[int] = []  # verified tokens waiting to be emitted
    logits = first_logits
    passes = fed = 0

    def done(reason: StopReason) -> Generation:
        return Generation(tokens, reason, passes, min(fed, len(tokens)))

    while True:
        if cancelled and cancelled():
            return done(StopReason.CANCELLED)
        token = decided.pop(0) if decided else sampler(logits, generator)
        if token in eos_ids:
            return done(StopReason.EOS)
        tokens.append(token)
        if drafter:
            drafter.append(token)
        if on_token and on_token(token):
            return done(StopReason.STOP_RULE)
        if len(tokens) >= max_new_tokens:
            return done(StopReason.MAX_TOKENS)
        if decided:
            continue  # a verified draft token: already in the cache
        position = start + len(tokens) - 1  # where `token` goes
        if position >= cache.max_len:
            return done(StopReason.CONTEXT_FULL)
        draft = drafter.propose(min(max_new_tokens - len(tokens), cache.max_len - position - 1)) if drafter else []
        if draft:
            decided = verify_draft(model, cache, token, draft, position, device)
            fed = len(tokens) + len(decided) - 1  # the accepted drafts are in the cache; the model's own choice not
        else:
            logits = step(torch.tensor([[token]], device=device), torch.tensor([position], device=device))
            fed = len(tokens)
        passes += 1


@torch.inference_mode()
def verify_draft(
    model: CodeGen, cache: KVCache, token: int, draft: list[int], position: int, device: torch.device
) -> list[int]:
    """Speculative decoding's check: `token` and the `draft` after it (d tokens) in one forward pass at positions
    position..position+d. The drafted tokens that equal the model's greedy choices are kept, plus the model's own
    choice after the last of them: what greedy decoding would have produced, one token or more per pass."""
    batch = torch.tensor([[token, *draft]], device=device)  # (1, 1 + d)
    positions = torch.arange(position, position + 1 + len(draft), device=device)  # (1 + d,)
    greedy = model(batch, positions, cache)[0].argmax(-1).tolist()  # (1 + d, V) -> 1 + d token ids
    accepted = 0
    while accepted < len(draft) and draft[accepted] == greedy[accepted]:
        accepted += 1
    return draft[:accepted] + [greedy[accepted]]
