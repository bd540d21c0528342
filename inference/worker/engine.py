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
    Candidate,
    CompletionRequest,
    CompletionResult,
    GenerationOptions,
    PrefillRequest,
    StopReason,
    Timings,
    WorkerRequest,
)
from codegen_lsp.inference.rules.generation import (
    Sampling,
    candidate_samplings,
    prompt_budget,
    prompt_or_bos,
    unique_candidates,
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
        return prompt_budget(options.context_tokens, options.max_new_tokens, self.config.n_positions)

    def _new_cache(self) -> KVCache:
        cache = KVCache(
            self.config, self.config.n_positions, self.loaded.dtype, self.loaded.device, static=self._static_cache
        )
        if self._decode_step_factory is not None:  # captured while the cache is still empty
            self._steps[id(cache)] = self._decode_step_factory(cache)
        return cache

    def generate(
        self,
        request: CompletionRequest,
        cancelled: Callable[[], bool] | None = None,
        paused: Callable[[], bool] | None = None,
    ) -> CompletionResult:
        """The request's candidates, after computing what the document's cache lacks of the prompt's window.
        `cancelled` is asked between two prefill chunks and two decode steps; `paused` between two blocks of a
        prefill chunk (a request of another document waits: the chunk is dropped and computed again later)."""
        t0 = time.perf_counter()
        budget = self.budget(request.options)
        prompt_ids, window_start = fit_window(
            request.prompt, self.tokenizer.encode_with_offsets, budget, self.window_chunk
        )
        return self._run(request, prompt_ids, window_start, t0, cancelled, paused, request.options)

    def prefill(
        self,
        request: PrefillRequest,
        cancelled: Callable[[], bool] | None = None,
        paused: Callable[[], bool] | None = None,
    ) -> CompletionResult:
        """Ahead of the first keystroke (the document was opened): its start, as far as the budget goes, which is
        the prefix of every prompt whose window starts at the top of the file. The cache is all it leaves."""
        t0 = time.perf_counter()
        budget = prompt_budget(request.context_tokens, 0, self.config.n_positions)
        prompt_ids = self.tokenizer.encode(request.prompt)[:budget]
        return self._run(request, prompt_ids, 0, t0, cancelled, paused, None)

    def _run(
        self,
        request: WorkerRequest,
        prompt_ids: list[int],
        window_start: int,
        t0: float,
        cancelled: Callable[[], bool] | None,
        paused: Callable[[], bool] | None,
        options: GenerationOptions | None,
    ) -> CompletionResult:
        """Fill the document's slot with `prompt_ids`, then decode the candidates `options` asks for (none for a
        prefill). Stopped between two prefill chunks: one CANCELLED candidate, and the chunks computed stay."""
        prompt_ids = prompt_or_bos(prompt_ids, self.config.bos_token_id)
        t1 = time.perf_counter()
        slot = self.slots.get(request.document)
        reused = common_prefix_length(slot.tokens, prompt_ids) if self.cache_reuse else 0
        reused = min(reused, len(prompt_ids) - 1)  # the last prompt token runs again: its logits start decoding
        first_logits = self._fill(slot, prompt_ids, reused, cancelled, paused)
        t2 = t3 = time.perf_counter()
        computed = len(slot.tokens) - reused
        passes = -(-computed // self.prefill_chunk)
        if first_logits is None:
            candidates: tuple[Candidate, ...] = (Candidate((), "", StopReason.CANCELLED),)
        elif options is None:
            candidates = ()
        else:
            candidates, decode_passes = self._decode_candidates(slot, first_logits, len(prompt_ids), options, cancelled)
            passes += decode_passes
            t3 = time.perf_counter()
        timings = Timings(
            tokens_reused=reused,
            tokens_computed=computed,
            prefill_ms=(t2 - t1) * 1000,
            decode_ms=(t3 - t2) * 1000,
            forward_passes=passes,
            tokenize_ms=(t1 - t0) * 1000,
            total_ms=(t3 - t0) * 1000,
        )
        return CompletionResult(request.request_id, candidates, len(prompt_ids), window_start, timings)

    def _fill(
        self,
        slot: Slot,
        prompt_ids: list[int],
        reused: int,
        cancelled: Callable[[], bool] | None,
        paused: Callable[[], bool] | None,
    ) -> torch.Tensor | None:
        """Compute prompt_ids[reused:] into the slot's cache, in chunks; the last token's logits, or None when
        `cancelled` said stop between two chunks (the chunks computed stay in the slot) or `paused` inside one
        (that chunk is dropped: its positions hold only some blocks' keys and values)."""
        device = self.loaded.device
        del slot.tokens[reused:]  # positions >= reused are about to be overwritten
        first_logits = None
        for begin in range(reused, len(prompt_ids), self.prefill_chunk):
            chunk = prompt_ids[begin : begin + self.prefill_chunk]
            first_logits = prefill(self.model, torch.tensor(chunk, device=device), begin, slot.cache, paused)
            if first_logits is None:
                return None
            slot.tokens.extend(chunk)
            if cancelled is not None and begin + len(chunk) < len(prompt_ids) and cancelled():
                return None
        return first_logits

    def _decode_candidates(
        self,
        slot: Slot,
        first_logits: torch.Tensor,
        start: int,
        options: GenerationOptions,
        cancelled: Callable[[], bool] | None,
    ) -> tuple[tuple[Candidate, ...], int]:
        """Every candidate from the same prefilled prompt, de-duplicated; and the forward passes they took."""
        samplings = candidate_samplings(options)
        candidates: list[Candidate | None] = [None] * len(samplings)
        passes = 0
        # The primary candidate runs last, so that the cache ends up holding what the person is shown.
        for index in reversed(range(len(samplings))):
            generation = self._generate(slot, first_logits, start, options, samplings[index], index == 0, cancelled)
            passes += generation.forward_passes
            text = self.tokenizer.decode(generation.token_ids, skip_special_tokens=True)
            candidates[index] = Candidate(tuple(generation.token_ids), text, generation.stop_reason)
            if generation.stop_reason == StopReason.CANCELLED:
                break
        return unique_candidates(c for c in candidates if c is not None), passes

    def _generate(
        self,
        slot: Slot,
        first_logits: torch.Tensor,
        start: int,
        options: GenerationOptions,
        sampling: Sampling,
        primary: bool,
        cancelled: Callable[[], bool] | None,
    ) -> Generation:
        sampler = Sampler(sampling.temperature, options.top_p, sampling.seed)
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
        if primary:
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
