"""Turn generated token ids into text as they arrive, agreeing with a one-shot `decode` at the end.

Byte-level BPE tokens are bytes, not characters: an emoji or a CJK character is often split over two or three
tokens. The decoder keeps those bytes in an incremental UTF-8 decoder until the character is complete, so the
editor never sees half a character, and each push costs O(1) however long the completion is.

It mirrors how `tokenizers` decodes (see `tokenizer.codegen_tokenizer`): an added token is emitted verbatim
and first flushes pending bytes (an incomplete character there becomes U+FFFD, as in `decode`); a skipped
special token and an id the tokenizer does not have emit nothing and do not interrupt a character.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .codegen_tokenizer import CodeGenTokenizer

_REPLACEMENT = "\ufffd"


class StreamingDecoder:
    """`"".join(push(i) for i in ids) + flush() == tokenizer.decode(ids, skip_special_tokens=...)`.

    Guaranteed for byte-level tokenizers (CodeGen, GPT-2 and their kin); for others the O(n) fallback keeps it
    as long as decoding more ids only appends to the text, as Metaspace and ByteFallback decoders do.
    """

    def __init__(self, tokenizer: CodeGenTokenizer, skip_special_tokens: bool = True) -> None:
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
