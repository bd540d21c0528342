"""Step 5: typing what the ghost text shows is answered at once, without the worker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codegen_lsp.lsp_server.pipeline.context import CompletionContext, build_context
from codegen_lsp.lsp_server.pipeline.typed_through import TypedThroughCache

URI = "file:///work/shapes.py"
DOC = "def area(r):\n    return |\n\nprint(area(2))\n"


def ctx_after(typed: str = "", doc: str = DOC) -> CompletionContext:
    """The context once `typed` was typed at the '|' of `doc`."""
    offset = doc.index("|")
    text = doc[:offset] + typed + doc[offset + 1 :]
    return build_context(text, offset + len(typed), 10_000)


def cache_showing(*items: str) -> TypedThroughCache:
    cache = TypedThroughCache()
    cache.remember(URI, ctx_after(), list(items))
    return cache


def test_typing_the_start_of_the_suggestion_returns_the_rest() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after("3")) == [".14 * r * r"]
    assert cache.lookup(URI, ctx_after("3.14 *")) == [" r * r"]


def test_only_suggestions_that_match_what_was_typed_survive() -> None:
    cache = cache_showing("math.pi * r ** 2", "3.14 * r * r", "3 * r * r")
    assert cache.lookup(URI, ctx_after("3")) == [".14 * r * r", " * r * r"]
    assert cache.lookup(URI, ctx_after("3.")) == ["14 * r * r"]


def test_asking_again_at_the_same_place_returns_the_same_suggestions() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after()) == ["3.14 * r * r"]


def test_enter_with_auto_indent_types_through_a_multi_line_suggestion() -> None:
    doc = "def area(r):|\n"
    cache = TypedThroughCache()
    cache.remember(URI, ctx_after(doc=doc), ["\n    return 3.14 * r * r"])
    assert cache.lookup(URI, ctx_after("\n    ", doc=doc)) == ["return 3.14 * r * r"]


def test_typing_the_whole_suggestion_is_a_miss() -> None:
    cache = cache_showing("r * r")
    assert cache.lookup(URI, ctx_after("r * r")) is None
    assert len(cache) == 0


def test_typing_something_else_is_a_miss() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after("2")) is None
    assert cache.lookup(URI, ctx_after("3")) is None  # and the entry is gone


def test_backspace_is_a_miss_even_when_what_is_left_still_matches() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after("3.1")) == ["4 * r * r"]
    assert cache.lookup(URI, ctx_after("3.")) is None
    assert cache.lookup(URI, ctx_after("3.1")) is None


def test_an_edit_elsewhere_in_the_window_is_a_miss() -> None:
    cache = cache_showing("3.14 * r * r")
    edited = DOC.replace("def area(r)", "def area(d)")
    assert cache.lookup(URI, ctx_after("3", doc=edited)) is None


def test_a_changed_rest_of_line_or_following_lines_is_a_miss() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after("3", doc=DOC.replace("|\n", "|  # area\n"))) is None
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup(URI, ctx_after("3", doc=DOC.replace("print(area(2))", "print(area(3))"))) is None


def test_each_document_has_its_own_entry() -> None:
    cache = cache_showing("3.14 * r * r")
    assert cache.lookup("file:///work/other.py", ctx_after("3")) is None
    assert cache.lookup(URI, ctx_after("3")) == [".14 * r * r"]


def test_memory_is_bounded_to_the_most_recently_used_documents() -> None:
    cache = TypedThroughCache(max_documents=2)
    for name in ["a", "b", "c"]:
        cache.remember(name, ctx_after(), ["3.14"])
    assert len(cache) == 2
    assert cache.lookup("a", ctx_after("3")) is None
    assert cache.lookup("c", ctx_after("3")) == [".14"]


def test_remembering_nothing_forgets_the_document() -> None:
    cache = cache_showing("3.14")
    cache.remember(URI, ctx_after(), ["", ""])
    assert len(cache) == 0 and cache.lookup(URI, ctx_after()) is None


def test_forget_drops_the_entry() -> None:
    cache = cache_showing("3.14")
    cache.forget(URI)
    cache.forget(URI)
    assert cache.lookup(URI, ctx_after("3")) is None


@given(
    items=st.lists(st.text("ab\n ", min_size=1, max_size=6), min_size=1, max_size=4),
    typed=st.text("ab\n ", max_size=6),
)
def test_typed_through_answers_are_what_the_worker_answered_minus_what_was_typed(items, typed) -> None:
    cache = cache_showing(*items)
    rest = cache.lookup(URI, ctx_after(typed))
    expected = list(dict.fromkeys(i[len(typed) :] for i in items if i.startswith(typed) and i != typed))
    assert rest == (expected or None)
    for remainder in rest or []:
        assert remainder and typed + remainder in items


@given(item=st.text("ab(), ", min_size=2, max_size=12))
def test_typing_a_suggestion_character_by_character_hits_until_it_is_used_up(item: str) -> None:
    cache = cache_showing(item)
    for n in range(1, len(item)):
        assert cache.lookup(URI, ctx_after(item[:n])) == [item[n:]]
    assert cache.lookup(URI, ctx_after(item)) is None
