"""The engine: KV-cache reuse across keystrokes is exact, computes only new tokens, and stops early."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions, PrefillRequest, StopReason
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.inference.worker.engine import Engine, common_prefix_length

SOURCE = '''import os
import sys


def read_config(path):
    """Read a config file and return a dict."""
    result = {}
    with open(path) as handle:
        for line in handle:
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result


class Cache:
    def __init__(self, size):
        self.size = size
        self.items = {}

    def get(self, key):
        return self.items.get(key)
'''
OPTIONS = GenerationOptions(max_new_tokens=8, context_tokens=120)


@pytest.fixture
def engines(tiny_loaded):
    reuse, scratch = Engine(tiny_loaded, cache_slots=2), Engine(tiny_loaded, cache_reuse=False)
    for engine in (reuse, scratch):
        engine.window_chunk = 32  # the tiny model has 256 positions: slide in small chunks
    return reuse, scratch


def ask(engine: Engine, prompt: str, document: str = "file:///a.py", options: GenerationOptions = OPTIONS):
    return engine.generate(CompletionRequest(1, document, prompt, options))


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2


def test_a_keystroke_computes_only_the_new_tokens(engines):
    reuse, _ = engines
    first = ask(reuse, SOURCE[:200])
    assert first.timings.tokens_reused == 0
    second = ask(reuse, SOURCE[:203])
    assert second.timings.tokens_reused >= first.prompt_tokens - 2
    assert second.timings.tokens_computed <= 3


def test_asking_again_for_the_same_prompt_recomputes_one_token(engines):
    reuse, _ = engines
    first = ask(reuse, SOURCE[:150])
    again = ask(reuse, SOURCE[:150])
    assert again.timings.tokens_computed == 1
    assert again.candidates == first.candidates


def prompt_whose_suggestion_keeps_its_tokens(engine: Engine) -> tuple[str, str]:
    """The first of SOURCE[:180], SOURCE[:181], ... whose tokens typing its suggestion (3 tokens or more) leaves
    as they are (BPE can merge a prompt's last characters with a suggestion's first), and the text with the
    suggestion typed. The suggestion was just made, so the engine's slot holds it."""
    encode = engine.tokenizer.encode
    for cut in range(180, 240):  # short enough that the whole prompt fits OPTIONS.context_tokens
        prompt = SOURCE[:cut]
        first = ask(engine, prompt)
        typed = prompt + first.candidates[0].text
        prompt_ids, typed_ids = encode(prompt), encode(typed)
        if first.prompt_tokens == len(prompt_ids) and typed_ids[: len(prompt_ids) + 3] == prompt_ids + list(
            first.candidates[0].token_ids[:3]
        ):
            return prompt, typed
    raise AssertionError("no prompt in SOURCE[180:240] keeps its tokens when its suggestion is typed")


def test_typing_the_suggestion_reuses_the_generated_tokens(engines):
    """The slot keeps what the model generated, so accepting/typing it costs (almost) nothing."""
    reuse, _ = engines
    prompt, typed = prompt_whose_suggestion_keeps_its_tokens(reuse)
    second = ask(reuse, typed)
    assert second.timings.tokens_computed <= 2


def test_reuse_off_recomputes_everything(engines):
    _, scratch = engines
    ask(scratch, SOURCE[:200])
    second = ask(scratch, SOURCE[:203])
    assert second.timings.tokens_reused == 0
    assert second.timings.tokens_computed == second.prompt_tokens


def test_documents_have_their_own_slots_and_the_least_recent_is_evicted(engines):
    reuse, _ = engines  # two slots
    ask(reuse, SOURCE[:100], "file:///a.py")
    ask(reuse, SOURCE[:100], "file:///b.py")
    assert ask(reuse, SOURCE[:100], "file:///a.py").timings.tokens_reused > 0
    ask(reuse, SOURCE[:100], "file:///c.py")  # evicts b
    assert ask(reuse, SOURCE[:100], "file:///b.py").timings.tokens_reused == 0


def test_an_empty_document_still_completes(engines):
    reuse, _ = engines
    result = ask(reuse, "")
    assert result.prompt_tokens == 1 and result.candidates


def test_a_long_prompt_is_windowed_to_the_budget(engines):
    reuse, _ = engines
    long_prompt = SOURCE * 8
    result = ask(reuse, long_prompt)
    assert result.prompt_tokens <= OPTIONS.context_tokens
    assert result.window_start_char > 0 and long_prompt[result.window_start_char - 1] == "\n"


def test_cancellation_stops_decoding_at_the_next_step(engines):
    reuse, _ = engines
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    result = reuse.generate(CompletionRequest(1, "d", SOURCE[:100], GenerationOptions(max_new_tokens=50)), cancelled)
    assert result.candidates[0].stop_reason == StopReason.CANCELLED
    assert len(result.candidates[0].token_ids) == 3
    after = ask(reuse, SOURCE[:100], "d")  # the slot stays consistent after a cancel
    assert after.timings.tokens_computed == 1


def test_several_candidates_come_back_distinct_with_the_greedy_one_first(engines):
    reuse, scratch = engines
    options = GenerationOptions(max_new_tokens=8, num_candidates=3, seed=7)
    result = ask(reuse, SOURCE[:200], options=options)
    greedy = ask(scratch, SOURCE[:200])
    assert result.candidates[0].token_ids == greedy.candidates[0].token_ids
    assert len({c.text for c in result.candidates}) == len(result.candidates) >= 2


def test_sampling_with_a_seed_is_reproducible(engines):
    reuse, scratch = engines
    options = GenerationOptions(max_new_tokens=10, temperature=0.9, top_p=0.9, seed=123)
    assert (
        ask(reuse, SOURCE[:150], options=options).candidates == ask(scratch, SOURCE[:150], options=options).candidates
    )


def test_early_stop_runs_fewer_forward_passes_for_the_same_final_completion(engines):
    """Decoding stops once what follows cannot survive post-processing; the cut text is unchanged."""
    reuse, scratch = engines
    long_options = GenerationOptions(max_new_tokens=40, context_tokens=120)
    full = ask(scratch, SOURCE[:220], options=long_options)
    text = full.candidates[0].text
    assert len(text) > 12
    # A truncation pattern that the model's own output hits about a third of the way in.
    pattern = re.escape(text[len(text) // 3 : len(text) // 3 + 2])
    rule = StopRule(patterns=(pattern,))
    early = ask(reuse, SOURCE[:220], options=GenerationOptions(max_new_tokens=40, context_tokens=120, stop_rule=rule))
    assert early.candidates[0].stop_reason == StopReason.STOP_RULE
    assert early.timings.forward_passes < full.timings.forward_passes
    assert rule.final_cut(early.candidates[0].text) == rule.final_cut(text)
    assert early.candidates[0].text[: rule.final_cut(text)] == text[: rule.final_cut(text)]


# --- exactness under random editing -------------------------------------------------------------------------

EDIT = st.one_of(
    st.tuples(st.just("type"), st.text(alphabet="abcdefxyz_ ()=:.,'\n", min_size=1, max_size=4)),
    st.tuples(st.just("backspace"), st.integers(1, 6)),
    st.tuples(st.just("paste"), st.integers(0, len(SOURCE) - 1), st.integers(20, 400)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("jump"), st.integers(0, 10_000)),
    st.tuples(st.just("switch")),
    st.tuples(st.just("slide"), st.integers(1, 3)),
)


class Editor:
    """A document with a cursor; the prompt is the text before the cursor."""

    def __init__(self) -> None:
        self.docs = {"file:///a.py": [SOURCE, 150], "file:///b.py": [SOURCE[::-1].swapcase(), 90]}
        self.current = "file:///a.py"
        self.history: list[tuple[str, int]] = []

    def apply(self, edit: tuple) -> None:
        text, cursor = self.docs[self.current]
        self.history.append((text, cursor))
        kind = edit[0]
        if kind == "type":
            text, cursor = text[:cursor] + edit[1] + text[cursor:], cursor + len(edit[1])
        elif kind == "backspace":
            removed = min(edit[1], cursor)
            text, cursor = text[: cursor - removed] + text[cursor:], cursor - removed
        elif kind == "paste":
            chunk = SOURCE[edit[1] : edit[1] + edit[2]]
            text, cursor = text[:cursor] + chunk + text[cursor:], cursor + len(chunk)
        elif kind == "undo" and len(self.history) > 1:
            self.history.pop()
            text, cursor = self.history.pop()
        elif kind == "jump":
            line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
            cursor = line_starts[edit[1] % len(line_starts)]
        elif kind == "switch":
            self.current = "file:///b.py" if self.current == "file:///a.py" else "file:///a.py"
            return
        elif kind == "slide":  # a large paste that pushes the window forward
            chunk = SOURCE * edit[1]
            text, cursor = text[:cursor] + chunk + text[cursor:], cursor + len(chunk)
        self.docs[self.current] = [text, cursor]

    @property
    def prompt(self) -> str:
        text, cursor = self.docs[self.current]
        return text[:cursor]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDIT, min_size=1, max_size=10))
def test_greedy_tokens_with_reuse_equal_a_run_from_scratch_under_any_edit_sequence(tiny_loaded, edits):
    reuse, scratch = Engine(tiny_loaded, cache_slots=2), Engine(tiny_loaded, cache_reuse=False)
    reuse.window_chunk = scratch.window_chunk = 32
    editor = Editor()
    for edit in edits:
        editor.apply(edit)
        with_reuse = ask(reuse, editor.prompt, editor.current)
        from_scratch = ask(scratch, editor.prompt, editor.current)
        assert with_reuse.candidates[0].token_ids == from_scratch.candidates[0].token_ids, edit
        assert with_reuse.prompt_tokens == from_scratch.prompt_tokens
        assert with_reuse.timings.tokens_computed <= from_scratch.timings.tokens_computed
        assert_slot_holds_what_it_claims(reuse, editor.current)


def assert_slot_holds_what_it_claims(engine: Engine, document: str) -> None:
    """The slot's token list is the truth about its cache: recomputing those tokens gives the same keys."""
    import torch

    from codegen_lsp.inference.model.generate import prefill
    from codegen_lsp.inference.model.kv_cache import KVCache

    slot = engine.slots.get(document)
    n = len(slot.tokens)
    fresh = KVCache(engine.config, engine.config.n_positions, torch.float32, "cpu")
    prefill(engine.model, torch.tensor(slot.tokens), 0, fresh)
    assert torch.allclose(slot.cache.k[:, :, :, :n], fresh.k[:, :, :, :n], atol=1e-4)
    assert torch.allclose(slot.cache.v[:, :, :, :n], fresh.v[:, :, :, :n], atol=1e-4)


def test_the_static_cache_path_used_by_cuda_graphs_gives_the_same_tokens_on_the_cpu(tiny_loaded):
    """On CUDA the decode step is captured over a static cache (full-length reads through a causal mask row).
    The same static cache and a per-cache step factory run here on the CPU, and must not change a token."""
    from codegen_lsp.inference.model.generate import decode_one

    created = []

    def factory(cache):
        created.append(cache)
        return lambda token, pos: decode_one(tiny_loaded.model, token, pos, cache)

    static = Engine(tiny_loaded, decode_step_factory=factory, static_cache=True)
    dynamic = Engine(tiny_loaded)
    for prompt in (SOURCE[:120], SOURCE[:125], SOURCE[:300]):
        assert ask(static, prompt).candidates == ask(dynamic, prompt).candidates
    assert len(created) == 1 and created[0].static  # one step per cache, made when the cache was created


def test_prompt_lookup_drafts_give_exactly_the_greedy_tokens_in_fewer_passes(tiny_loaded):
    """Speculative drafts copied from the prompt are verified by the model: same tokens, fewer forward passes
    when the output repeats what came before (as code does, and as this random model's loops do)."""
    plain = Engine(tiny_loaded, prompt_lookup=False)
    drafted = Engine(tiny_loaded, prompt_lookup=True)
    plain.eos_ids = drafted.eos_ids = ()
    options = GenerationOptions(max_new_tokens=48, context_tokens=200)
    saved = 0
    for cut in range(60, len(SOURCE), 61):
        expected = ask(plain, SOURCE[:cut], options=options)
        got = ask(drafted, SOURCE[:cut], options=options)
        assert got.candidates[0].token_ids == expected.candidates[0].token_ids, cut
        saved += expected.timings.forward_passes - got.timings.forward_passes
        # the slot holds exactly what was fed: asking again recomputes one token only
        assert_slot_holds_what_it_claims(drafted, "file:///a.py")
        assert ask(drafted, SOURCE[:cut], options=options).timings.tokens_computed == 1
    assert saved > 0


def test_ngram_drafter_proposes_what_followed_the_last_occurrence():
    from codegen_lsp.inference.model.generate import NgramDrafter

    drafter = NgramDrafter([1, 2, 3, 4, 5, 9, 1, 2], k=3, longest=2)
    assert drafter.propose(limit=10) == [3, 4, 5]
    drafter.append(3)
    assert drafter.propose(limit=10) == [4, 5, 9]
    assert drafter.propose(limit=1) == [4]
    repeating = NgramDrafter([7, 7, 7], k=4, longest=2)
    assert repeating.propose(limit=10) == [7, 7, 7, 7]  # an overlapping match continues the copy
    assert NgramDrafter([1, 2, 3], longest=2).propose(limit=5) == []


def test_ngram_drafter_prefers_the_longest_match_then_the_last_suggestion():
    from codegen_lsp.inference.model.generate import NgramDrafter

    history = [9, 1, 2, 30, 31, 0, 5, 1, 2, 20, 21, 0, 8, 9, 1, 2]
    assert NgramDrafter(history, k=2).propose(limit=9) == [30, 31]  # (9, 1, 2) beats the later (1, 2)
    assert NgramDrafter(history, k=2, longest=2).propose(limit=9) == [20, 21]  # the latest (1, 2)
    assert NgramDrafter(history, k=2, previous=[4, 9, 1, 2, 40, 41]).propose(limit=9) == [40, 41]
    assert NgramDrafter(history, k=2, previous=[4, 1, 2, 40, 41]).propose(limit=9) == [30, 31]  # longer wins
    assert NgramDrafter(history, k=5, previous=[9, 1, 2, 40]).propose(limit=9) == [40]  # what the previous has
    assert NgramDrafter([3, 4], previous=[3, 4]).propose(limit=9) == []  # nothing followed


def test_typing_part_of_a_suggestion_drafts_the_rest_of_it(tiny_loaded):
    """After a keystroke the new suggestion often realigns with the old one: the old one is drafted from and
    verified, so the same greedy tokens come in fewer forward passes than from an engine that never saw it."""
    engine, fresh = Engine(tiny_loaded), Engine(tiny_loaded)
    engine.eos_ids = fresh.eos_ids = ()
    options = GenerationOptions(max_new_tokens=24, context_tokens=200)
    prompt = SOURCE[:300]
    shown = ask(engine, prompt, options=options).candidates[0]
    typed = prompt + engine.tokenizer.decode(list(shown.token_ids[:3]))
    expected, got = ask(fresh, typed, options=options), ask(engine, typed, options=options)
    assert got.candidates[0].token_ids == expected.candidates[0].token_ids
    assert got.timings.forward_passes < expected.timings.forward_passes


def test_slots_are_bounded_by_memory():
    from codegen_lsp.inference.worker.engine import slots_that_fit

    assert slots_that_fit(4, slot_bytes=100, free_bytes=10_000) == 4
    assert slots_that_fit(4, slot_bytes=100, free_bytes=500) == 2  # half of the free memory: 250 bytes
    assert slots_that_fit(4, slot_bytes=100, free_bytes=10) == 1  # always one slot
    assert slots_that_fit(3, slot_bytes=100, free_bytes=None) == 3


def test_slot_size_is_what_a_cache_allocates(tiny_loaded):
    from codegen_lsp.inference.model.kv_cache import KVCache

    engine = Engine(tiny_loaded)
    cache = KVCache(tiny_loaded.config, tiny_loaded.config.n_positions, tiny_loaded.dtype, "cpu")
    assert engine.slot_bytes == cache.nbytes


def test_warm_up_leaves_no_slot_behind(tiny_loaded):
    engine = Engine(tiny_loaded, cache_slots=2)
    engine.warm_up()
    assert len(engine.slots) == 0


def test_a_prompt_computed_in_chunks_gives_the_greedy_tokens_of_one_pass(tiny_loaded):
    whole, chunked = Engine(tiny_loaded), Engine(tiny_loaded)
    chunked.prefill_chunk = 16  # the prompt below is ~60 tokens: four chunks
    prompt = SOURCE[:220]
    expected = ask(whole, prompt)
    got = ask(chunked, prompt)
    assert got.candidates == expected.candidates
    assert got.timings.forward_passes > expected.timings.forward_passes  # it really ran in chunks


def test_a_cancel_between_prefill_chunks_stops_at_once_and_keeps_what_was_computed(tiny_loaded):
    engine = Engine(tiny_loaded)
    engine.prefill_chunk = 16
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return True  # as soon as the first chunk is in

    result = engine.generate(CompletionRequest(1, "doc", SOURCE[:220], OPTIONS), cancelled)
    assert [c.stop_reason for c in result.candidates] == [StopReason.CANCELLED] and len(asked) == 1
    assert result.timings.tokens_computed == 16
    again = ask(engine, SOURCE[:220], document="doc")
    assert again.timings.tokens_reused == 16  # the first chunk was kept


def test_a_pause_inside_a_prefill_chunk_drops_that_chunk_only_and_the_resumed_request_is_exact(tiny_loaded):
    engine = Engine(tiny_loaded)
    engine.prefill_chunk = 16
    blocks_between = tiny_loaded.config.n_layer - 1  # asked after every block but the last
    asked = []

    def paused() -> bool:
        asked.append(True)
        return len(asked) > blocks_between  # the first chunk runs through; the second stops after one block

    result = engine.generate(CompletionRequest(1, "doc", SOURCE[:220], OPTIONS), paused=paused)
    assert [c.stop_reason for c in result.candidates] == [StopReason.CANCELLED]
    assert len(asked) == blocks_between + 1 and result.timings.tokens_computed == 16  # only whole chunks stay
    resumed = ask(engine, SOURCE[:220], document="doc")
    assert resumed.timings.tokens_reused == 16  # the half-computed chunk is computed again
    assert resumed.candidates == ask(Engine(tiny_loaded, cache_reuse=False), SOURCE[:220]).candidates


def test_the_model_asks_to_stop_between_blocks_never_after_the_last(tiny_loaded):
    model, asked = tiny_loaded.model, []
    ids = torch.tensor([[1, 2, 3]])
    logits = model(ids, interrupted=lambda: asked.append(True) or False)
    assert logits is not None and len(asked) == tiny_loaded.config.n_layer - 1
    assert model(ids, interrupted=lambda: True) is None


def test_a_prefill_only_request_fills_the_cache_for_the_first_keystroke(tiny_loaded):
    engine = Engine(tiny_loaded)
    ahead = engine.prefill(PrefillRequest(1, "doc", SOURCE[:220]))
    assert ahead.candidates == () and ahead.timings.tokens_computed == ahead.prompt_tokens
    keystroke = ask(engine, SOURCE[:221], document="doc")
    assert keystroke.timings.tokens_computed <= 2  # only what the keystroke changed


def test_a_prefill_keeps_the_start_of_a_document_longer_than_the_budget(tiny_loaded):
    engine = Engine(tiny_loaded)
    ahead = engine.prefill(PrefillRequest(1, "doc", SOURCE, context_tokens=40))
    assert ahead.window_start_char == 0 and ahead.prompt_tokens == 40
    assert engine.slots.get("doc").tokens == engine.tokenizer.encode(SOURCE)[:40]
