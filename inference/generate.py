"""Prefill, decode and sampling: the token-by-token loop around the model and its static KV cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from inference.kv_cache import KVCache
from inference.model import CodeGen
from inference.protocol import StopReason


@torch.inference_mode()
def prefill(model: CodeGen, tokens: Tensor, start: int, cache: KVCache) -> Tensor:
    """Run tokens (T,) at positions start..start+T-1 into the cache; logits of the last one, (V,) fp32."""
    input_pos = torch.arange(start, start + tokens.numel(), device=tokens.device)  # (T,)
    logits = model(tokens[None], input_pos, cache, last_only=True)  # (1, 1, V)
    return logits[0, -1].float()


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


def decode_loop(
    model: CodeGen,
    cache: KVCache,
    first_logits: Tensor,
    start: int,
    max_new_tokens: int,
    sampler: Sampler,
    eos_ids: tuple[int, ...],
    on_token: Callable[[int, int], bool] | None = None,
    cancelled: Callable[[], bool] | None = None,
    step: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Generation:
    """Generate after a prefilled prompt of `start` tokens whose last logits are `first_logits`.

    on_token(token, position) is called for each new token before it is fed back; returning True stops there
    (the stop rule). The last new token is never fed back: the cache holds positions < start + len(tokens) - 1.
    `step(token (1,1), input_pos (1,))` replaces decode_one (a captured CUDA graph, say).
    """
    device = first_logits.device
    generator = sampler.make_generator(device)
    step = step or (lambda token, pos: decode_one(model, token, pos, cache))
    tokens: list[int] = []
    logits = first_logits
    passes = 0
    position = start
    while True:
        if cancelled and cancelled():
            return Generation(tokens, StopReason.CANCELLED, passes)
        token = sampler(logits, generator)
        if token in eos_ids:
            return Generation(tokens, StopReason.EOS, passes)
        tokens.append(token)
        if on_token and on_token(token, position):
            return Generation(tokens, StopReason.STOP_RULE, passes)
        if len(tokens) >= max_new_tokens:
            return Generation(tokens, StopReason.MAX_TOKENS, passes)
        if position >= cache.max_len:
            return Generation(tokens, StopReason.CONTEXT_FULL, passes)
        logits = step(torch.tensor([[token]], device=device), torch.tensor([position], device=device))
        passes += 1
        position += 1
