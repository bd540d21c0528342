"""Turn generated token ids into text as they arrive, agreeing with a one-shot `decode` at the end.

Byte-level BPE tokens are bytes, not characters: an emoji or a CJK character is often split over two or three
tokens. The decoder keeps those bytes in an incremental UTF-8 decoder until the character is complete, so the
editor never sees half a character, and each push costs O(1) however long the completion is.

It mirrors how `tokenizers` decodes (see `tokenizer.codegen_tokenizer`): an added token is emitted verbatim
and first flushes pending bytes (an incomplete character there becomes U+FFFD, as in `decode`); a skipped
special token and an id the tokenizer does not have emit nothing and do not interrupt a character.

Why not `tokenizers.decoders.DecodeStream` (checked with tokenizers 0.23.3): what it emits is always a prefix of
`decode` (checked on 3000 random id lists of tests/test_streaming_decoder.py), and it is faster (0.7 against
1.8 us a token), but it does not do this job:
- It has no flush. Ids [30325] (" " and the first 3 bytes of an emoji: a generation cut by max_new_tokens)
  never yield anything, while `decode` gives " \ufffd"; a flush would mean keeping every id and decoding them
  all again at the end, beside the stream's own copy of the pending ones.
- It holds back whole tokens, not bytes: `step(30325)` returns None where `push(30325)` returns the complete
  " ", so the stop rule, which reads `text` after every token, sees text a token late.
- It holds back any text ending in U+FFFD, not just an unfinished character: [30325, 50284, 222] yields
  [None, " \ufffd    ", None]: the lone continuation byte 222, invalid whatever follows, waits for a next
  token that may never come (we emit [" ", "\ufffd    ", "\ufffd"]); a U+FFFD the model writes waits too.
If a later `tokenizers` gets a flush and holds back bytes, not tokens, tests/test_streaming_decoder.py is the
spec to hold it to.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Protocol


class TokenizerForStreaming(Protocol):
    """What streaming needs of a tokenizer (`CodeGenTokenizer` has it); a protocol, so that this module does
    not import the tokenizer that imports it."""

    is_byte_level: bool

    def is_added(self, token_id: int) -> bool: ...

    def is_special(self, token_id: int) -> bool: ...

    def token_bytes(self, token_id: int) -> bytes: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...


_REPLACEMENT = "\ufffd"


class StreamingDecoder:
    """`"".join(push(i) for i in ids) + flush() == tokenizer.decode(ids, skip_special_tokens=...)`.

    Guaranteed for byte-level tokenizers (CodeGen, GPT-2 and their kin); for others the O(n) fallback keeps it
    as long as decoding more ids only appends to the text, as Metaspace and ByteFallback decoders do.
    """

    def __init__(self, tokenizer: TokenizerForStreaming, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pieces: list[str] = []
        self._text: str | None = ""
        # Tokenizers without a byte-level decoder (e.g. a Metaspace tokenizer.json) re-decode all: O(n).
        self._ids: list[int] | None = None if tokenizer.is_byte_level else []

    def push(self, token_id: int) -> str:
        """The text that `token_id` completes (possibly ""); bytes of an unfinished character wait."""
        token_id = int(token_id)  # a sampled id may come as a 0-d tensor or a numpy integer
        if self._ids is not None:
            return self._emit(self._redecode(token_id, final=False))
        tokenizer = self._tokenizer
        if tokenizer.is_added(token_id):
            if self._skip_special_tokens and tokenizer.is_special(token_id):
                return ""
            piece = self._utf8.decode(b"", final=True) + tokenizer.token_bytes(token_id).decode("utf-8")
            self._utf8.reset()
            return self._emit(piece)
        try:
            data = tokenizer.token_bytes(token_id)
        except ValueError:  # not in the tokenizer: decode drops it too
            return ""
        return self._emit(self._utf8.decode(data))

    def flush(self) -> str:
        """Whatever is still pending; an unfinished character becomes U+FFFD, as `decode` makes it."""
        if self._ids is not None:
            return self._emit(self._redecode(None, final=True))
        piece = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return self._emit(piece)

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        if self._text is None:
            self._text = "".join(self._pieces)
            self._pieces = [self._text]
        return self._text

    def _emit(self, piece: str) -> str:
        if piece:
            self._pieces.append(piece)
            self._text = None
        return piece

    def _redecode(self, token_id: int | None, final: bool) -> str:
        """Fallback for other decoders: decode all ids and emit what extends the text emitted so far,
        holding back a trailing U+FFFD that may be a character still being completed."""
        assert self._ids is not None
        if token_id is not None:
            self._ids.append(token_id)
        full = self._tokenizer.decode(self._ids, skip_special_tokens=self._skip_special_tokens)
        emitted = self.text
        if not full.startswith(emitted):
            return ""  # the decoder rewrote earlier text (e.g. space clean-up); nothing can be taken back
        if not final:
            full = full.rstrip(_REPLACEMENT)
        return full[len(emitted) :]
