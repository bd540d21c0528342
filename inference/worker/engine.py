"""The completion engine: per-document KV cache slots, prefix reuse across keystrokes, candidates, early stop.

A request's prompt is tokenized and windowed; the document's slot holds the tokens whose keys and values are
cached (the last prompt and what the model generated after it). Only the tokens after the longest common prefix
go through the model. Greedy results are the same as a run from scratch on the same prompt.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from codegen_lsp.inference.checkpoint.loading import LoadedModel
from codegen_lsp.inference.model.device import available_memory_bytes
from codegen_lsp.inference.model.generate import Generation, NgramDrafter, Sampler, decode_loop, prefill
from codegen_lsp.inference.model.kv_cache import KVCache
from codegen_lsp.inference.protocol import (
    ALTERNATIVE_TEMPERATURE,
    Candidate,
    CompletionRequest,
    CompletionResult,
    GenerationOptions,
    StopReason,
    Timings,
)
from codegen_lsp.inference.rules.window import WINDOW_CHUNK_TOKENS, fit_window

log = logging.getLogger("codegen_lsp.engine")

CACHE_MEMORY_FRACTION = 0.5  # KV cache slots may take at most this share of the memory free after loading
# The prompt is computed in chunks of this many tokens, with a look at `cancelled` between them: a newer request
# never waits for a whole long prefill (1.5k tokens take seconds on a CPU), and what was computed stays cached.
PREFILL_CHUNK_TOKENS = 256


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Slot:
    cache: KVCache
    tokens: list[int]  # tokens[i] is the token whose keys/values sit at position i
    suggested: list[int] = field(default_factory=list)  # the primary candidate's tokens, last time: drafts


class SlotPool:
    """One KV cache per document, least recently used evicted first, at most `limit` allocated."""

    def __init__(self, make_cache: Callable[[], KVCache], limit: int) -> None:
        self._make_cache = make_cache
        self.limit = max(1, limit)
        self._slots: OrderedDict[str, Slot] = OrderedDict()

    def get(self, document: str) -> Slot:
        slot = self._slots.pop(document, None)
        if slot is None:
            if len(self._slots) >= self.limit:
                _, evicted = self._slots.popitem(last=False)
                slot = Slot(evicted.cache, [])  # reuse the evicted buffers: no new allocation
            else:
                slot = Slot(self._make_cache(), [])
        self._slots[document] = slot
        return slot

    def forget(self, document: str) -> None:
        self._slots.pop(document, None)

    def __len__(self) -> int:
        return len(self._slots)


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        cache_slots: int = 4,
        cache_reuse: bool = True,
        decode_step_factory: Callable[[KVCache], Callable] | None = None,
        static_cache: bool = False,
        prompt_lookup: bool = True,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.config = loaded.config
        self.cache_reuse = cache_reuse
        self.window_chunk = WINDOW_CHUNK_TOKENS
        self.prefill_chunk = PREFILL_CHUNK_TOKENS
        self.prompt_lookup = prompt_lookup  # speculative drafts from the prompt; greedy output unchanged
        self.eos_ids = self.config.eos_token_ids
        self._decode_step_factory = decode_step_factory
        self._static_cache = static_cache
        self._steps: dict[int, Callable] = {}  # id(cache) -> its captured decode step
        self.slots = SlotPool(
            self._new_cache, slots_that_fit(cache_slots, self.slot_bytes, available_memory_bytes(loaded.device))
        )

    @property
    def slot_bytes(self) -> int:
        """One document's KV cache: keys and values of every layer at every position."""
        c = self.config
        return 2 * c.n_layer * c.n_positions * c.n_embd * self.loaded.dtype.itemsize

    def warm_up(self) -> None:
        """One small request on a scratch slot, so that the first keystroke does not pay for kernel selection
        and allocator growth (oneDNN builds its primitives on first use)."""
        options = GenerationOptions(max_new_tokens=4, context_tokens=64)
        self.generate(CompletionRequest(-1, "codegen-lsp://warm-up", "def f(x):\n    return x\n", options))
        self.slots.forget("codegen-lsp://warm-up")

    def budget(self, options: GenerationOptions) -> int:
        return max(1, min(options.context_tokens, self.config.n_positions - options.max_new_tokens))

    def _new_cache(self) -> KVCache:
        cache = KVCache(
            self.config, self.config.n_positions, self.loaded.dtype, self.loaded.device, static=self._static_cache
        )
        if self._decode_step_factory is not None:  # captured while the cache is still empty
            self._steps[id(cache)] = self._decode_step_factory(cache)
        return cache

    def generate(self, request: CompletionRequest, cancelled: Callable[[], bool] | None = None) -> CompletionResult:
        options = request.options
        t0 = time.perf_counter()
        if options.max_new_tokens == 0:
            # Ahead of the first keystroke (the document was opened): its start, as far as the budget goes, which
            # is the prefix of every prompt whose window starts at the top of the file.
            prompt_ids, window_start = self.tokenizer.encode(request.prompt)[: self.budget(options)], 0
        else:
            prompt_ids, window_start = fit_window(
                request.prompt, self.tokenizer.encode_with_offsets, self.budget(options), self.window_chunk
            )
        if not prompt_ids:  # an empty document: start from <|endoftext|>, as CodeGen was trained
            prompt_ids = [self.config.bos_token_id if self.config.bos_token_id is not None else 0]
        t1 = time.perf_counter()

        slot = self.slots.get(request.document)
        reused = common_prefix_length(slot.tokens, prompt_ids) if self.cache_reuse else 0
        reused = min(reused, len(prompt_ids) - 1)  # the last prompt token runs again: its logits start decoding
        device = self.loaded.device
        del slot.tokens[reused:]  # positions >= reused are about to be overwritten
        for begin in range(reused, len(prompt_ids), self.prefill_chunk):
            chunk = prompt_ids[begin : begin + self.prefill_chunk]
            first_logits = prefill(self.model, torch.tensor(chunk, device=device), begin, slot.cache)
            slot.tokens.extend(chunk)
            if cancelled is not None and begin + len(chunk) < len(prompt_ids) and cancelled():
                return self._cancelled_during_prefill(request, prompt_ids, window_start, reused, t0, t1)
        t2 = time.perf_counter()
        passes = -(-(len(prompt_ids) - reused) // self.prefill_chunk)
        if options.max_new_tokens == 0:  # a prefill ahead of the first keystroke: the cache is all it wanted
            timings = Timings(
                tokens_reused=reused,
                tokens_computed=len(prompt_ids) - reused,
                prefill_ms=(t2 - t1) * 1000,
                forward_passes=passes,
                tokenize_ms=(t1 - t0) * 1000,
                total_ms=(t2 - t0) * 1000,
            )
            return CompletionResult(request.request_id, (), len(prompt_ids), window_start, timings)

        candidates: list[Candidate | None] = [None] * max(1, options.num_candidates)
        # The primary candidate runs last, so that the cache ends up holding what the person is shown.
        for index in reversed(range(len(candidates))):
            generation = self._generate(slot, first_logits, len(prompt_ids), options, index, cancelled)
            passes += generation.forward_passes
            text = self.tokenizer.decode(generation.token_ids, skip_special_tokens=True)
            candidates[index] = Candidate(tuple(generation.token_ids), text, generation.stop_reason)
            if generation.stop_reason == StopReason.CANCELLED:
                break
        t3 = time.perf_counter()

        timings = Timings(
            tokens_reused=reused,
            tokens_computed=len(prompt_ids) - reused,
            prefill_ms=(t2 - t1) * 1000,
            decode_ms=(t3 - t2) * 1000,
            forward_passes=passes,
            tokenize_ms=(t1 - t0) * 1000,
            total_ms=(t3 - t0) * 1000,
        )
        return CompletionResult(
            request.request_id, unique(c for c in candidates if c is not None), len(prompt_ids), window_start, timings
        )

    def _cancelled_during_prefill(
        self, request: CompletionRequest, prompt_ids: list[int], window_start: int, reused: int, t0: float, t1: float
    ) -> CompletionResult:
        """Stopped between two prefill chunks: the chunks computed stay in the document's slot."""
        t2 = time.perf_counter()
        computed = len(self.slots.get(request.document).tokens) - reused
        timings = Timings(
            tokens_reused=reused,
            tokens_computed=computed,
            prefill_ms=(t2 - t1) * 1000,
            forward_passes=-(-computed // self.prefill_chunk),
            tokenize_ms=(t1 - t0) * 1000,
            total_ms=(t2 - t0) * 1000,
        )
        cancelled = Candidate((), "", StopReason.CANCELLED)
        return CompletionResult(request.request_id, (cancelled,), len(prompt_ids), window_start, timings)

    def _generate(
        self,
        slot: Slot,
        first_logits: torch.Tensor,
        start: int,
        options: GenerationOptions,
        index: int,
        cancelled: Callable[[], bool] | None,
    ) -> Generation:
        temperature = options.temperature
        if index > 0 and temperature <= 0:
            temperature = ALTERNATIVE_TEMPERATURE
        seed = None if options.seed is None else options.seed + index
        sampler = Sampler(temperature, options.top_p, seed)
        del slot.tokens[start:]  # positions >= start are about to be overwritten
        stop_rule = options.stop_rule
        on_token = None
        if stop_rule is not None:
            decoder = self.tokenizer.stream_decoder(skip_special_tokens=True)

            def on_token(token: int) -> bool:
                decoder.push(token)
                return stop_rule.cut(decoder.text) is not None

        max_new = min(options.max_new_tokens, self.config.n_positions - start)
        drafter = NgramDrafter(slot.tokens, previous=slot.suggested) if self.prompt_lookup else None
        generation = decode_loop(
            self.model,
            slot.cache,
            first_logits,
            start,
            max_new,
            sampler,
            self.eos_ids,
            on_token,
            cancelled,
            self._steps.get(id(slot.cache)),
            drafter,
        )
        slot.tokens.extend(generation.token_ids[: generation.fed])
        if index == 0:
            slot.suggested = list(generation.token_ids)
        return generation


def slots_that_fit(wanted: int, slot_bytes: int, free_bytes: int | None) -> int:
    """`wanted` slots, fewer if they would take more than CACHE_MEMORY_FRACTION of the free memory (never 0)."""
    if free_bytes is None:
        return max(1, wanted)
    fit = int(free_bytes * CACHE_MEMORY_FRACTION) // slot_bytes
    if fit < wanted:
        log.warning(
            "KV cache: %d slot(s) of %.0f MB fit in half the free memory (%.0f MB); %d were asked for",
            max(1, fit),
            slot_bytes / 1e6,
            free_bytes / 1e6,
            wanted,
        )
    return max(1, min(wanted, fit))


def unique(candidates) -> tuple[Candidate, ...]:
    seen: set[str] = set()
    out = []
    for candidate in candidates:
        if candidate.text not in seen:
            seen.add(candidate.text)
            out.append(candidate)
    return tuple(out)
