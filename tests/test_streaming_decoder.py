"""StreamingDecoder emits text token by token, never half a character, and adds up to `decode`."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import SentencePieceBPETokenizer

from codegen_lsp.tokenizer import CodeGenTokenizer, StreamingDecoder

ENDOFTEXT = 50256
FOUR_SPACES = 50284
EMOJI = "😀"  # " 😀" is two tokens: " \xf0\x9f\x98" (30325) and "\x80" (222)

# Texts whose tokens split multi-byte characters, around whitespace tokens and the special token.
FRAGMENTS = [
    "😀", " 😀", "👍🏽", "🇫🇷", "中文", " 字", "é", "e\u0301", "한국어", "𝔘", "\u200b",
    "    ", "\t\t", " " * 40, "\n", "def f():", " x", "<|endoftext|>", "'''",
]  # fmt: skip
multibyte_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=30).map("".join)


def tokenizer() -> CodeGenTokenizer:
    return CodeGenTokenizer.bundled()


def _ids_strategy() -> st.SearchStrategy[list[int]]:
    """Random ids: encodings of multi-byte text, spliced with arbitrary ids, whitespace and special tokens,
    and ids past the vocabulary (which decode drops)."""
    encoded = multibyte_text.map(lambda text: tokenizer().encode(text))
    loose = st.lists(
        st.one_of(
            st.integers(0, 51199),
            st.sampled_from([ENDOFTEXT, FOUR_SPACES, 50257, 50294, 30325, 222, 40792, 50295]),
        ),
        max_size=10,
    )
    return st.lists(encoded | loose, max_size=4).map(lambda parts: [i for part in parts for i in part])


random_ids = _ids_strategy()


@functools.cache
def single_byte_ids() -> dict[int, int]:
    """byte -> the id of the token that is just that byte (GPT-2 has one for each of the 256 bytes)."""
    tok = tokenizer()
    ids = {tok.token_bytes(i)[0]: i for i in range(tok.vocab_size) if len(tok.token_bytes(i)) == 1}
    assert len(ids) == 256
    return ids


# Arbitrary bytes, one token per byte: truncated, overlong, surrogate and stray continuation sequences.
raw_byte_ids = st.binary(max_size=24).map(lambda data: [single_byte_ids()[b] for b in data])


def stream(ids: list[int], skip_special_tokens: bool) -> tuple[list[str], str, StreamingDecoder]:
    decoder = tokenizer().stream_decoder(skip_special_tokens=skip_special_tokens)
    pieces = [decoder.push(i) for i in ids]
    return pieces, decoder.flush(), decoder


@settings(max_examples=400, deadline=None)
@given(random_ids, st.booleans())
def test_pushes_and_flush_add_up_to_decode(ids, skip):
    pieces, rest, decoder = stream(ids, skip)
    expected = tokenizer().decode(ids, skip_special_tokens=skip)
    assert "".join(pieces) + rest == expected
    assert decoder.text == expected


@settings(max_examples=400, deadline=None)
@given(raw_byte_ids, st.lists(st.sampled_from([FOUR_SPACES, ENDOFTEXT]), max_size=2), st.booleans())
def test_invalid_utf8_is_replaced_like_decode(ids, added, skip):
    """Python's incremental UTF-8 decoder replaces bad bytes exactly as the Rust decoder does."""
    ids = ids[: len(ids) // 2] + added + ids[len(ids) // 2 :]
    pieces, rest, _ = stream(ids, skip)
    assert "".join(pieces) + rest == tokenizer().decode(ids, skip_special_tokens=skip)


@settings(max_examples=300, deadline=None)
@given(multibyte_text, st.booleans())
def test_valid_text_streams_without_replacement_characters(text, skip):
    ids = tokenizer().encode(text)
    pieces, rest, _ = stream(ids, skip)
    if "\ufffd" not in text:
        assert not any("\ufffd" in piece for piece in pieces)
    expected = text.replace("<|endoftext|>", "") if skip else text
    assert "".join(pieces) == expected
    assert rest == ""


def test_a_split_emoji_waits_for_its_last_byte():
    ids = tokenizer().encode(" " + EMOJI + "!")
    assert ids[:2] == [30325, 222]
    decoder = tokenizer().stream_decoder()
    assert decoder.push(ids[0]) == " "  # the space is complete, the emoji's first 3 bytes wait
    assert decoder.text == " "
    assert decoder.push(ids[1]) == EMOJI
    assert decoder.push(ids[2]) == "!"
    assert decoder.flush() == ""
    assert decoder.text == " " + EMOJI + "!"


def test_an_unfinished_character_is_flushed_as_replacement():
    decoder = tokenizer().stream_decoder()
    assert decoder.push(30325) == " "
    assert decoder.flush() == "\ufffd"
    assert decoder.text == " \ufffd" == tokenizer().decode([30325])


def test_an_added_token_ends_an_unfinished_character_like_decode():
    ids = [30325, FOUR_SPACES, 222]
    decoder = tokenizer().stream_decoder()
    assert [decoder.push(i) for i in ids] == [" ", "\ufffd    ", "\ufffd"]
    assert decoder.text == tokenizer().decode(ids)


def test_special_tokens_are_skipped_or_kept():
    ids = tokenizer().encode("a<|endoftext|>b")
    assert "".join(map(tokenizer().stream_decoder(skip_special_tokens=True).push, ids)) == "ab"
    assert "".join(map(tokenizer().stream_decoder(skip_special_tokens=False).push, ids)) == "a<|endoftext|>b"


def test_a_skipped_special_token_does_not_break_a_character():
    decoder = tokenizer().stream_decoder(skip_special_tokens=True)
    assert [decoder.push(i) for i in (30325, ENDOFTEXT, 222)] == [" ", "", EMOJI]


def test_ids_past_the_vocabulary_emit_nothing():
    decoder = tokenizer().stream_decoder()
    assert decoder.push(50295) == "" and decoder.push(51199) == ""
    assert decoder.push(15496) == "Hello"


def test_non_byte_level_tokenizer_streams_by_redecoding(tmp_path):
    """A tokenizer.json with another decoder (SentencePiece-style Metaspace) still adds up to decode."""
    trained = SentencePieceBPETokenizer()
    trained.train_from_iterator(["def f(x):\n    return x + 1\n", "print('héllo wörld') 中文"] * 20, vocab_size=120)
    trained.save(str(tmp_path / "tokenizer.json"))
    tok = CodeGenTokenizer.from_folder(tmp_path)
    assert not tok.is_byte_level
    for text in ["def f(x): return x", "print('héllo') 中文", "  spaced   out  "]:
        ids = tok.encode(text)
        decoder = tok.stream_decoder()
        assert "".join(map(decoder.push, ids)) + decoder.flush() == tok.decode(ids, skip_special_tokens=True)
