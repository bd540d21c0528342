"""CodeGen's tokenizer on the Rust `tokenizers` library, without transformers.

Encoding runs on every keystroke for prompts of ~1500 tokens, so everything but loading happens in the Rust
backend. The backend is assembled exactly as transformers 5's `CodeGenTokenizer` assembles it (GPT-2
byte-level BPE; the whitespace tokens of `added_tokens.json` matched before BPE; `<|endoftext|>` special), so
ids and decoded text agree with transformers, which the tests use as the oracle.

Decoding facts that streaming relies on (how `tokenizers` decodes, hence how transformers decodes): added
tokens are emitted verbatim and end a run of byte-level tokens; each run is decoded with invalid UTF-8
replaced by U+FFFD; skipped special tokens vanish before runs are formed; ids unknown to the tokenizer are
dropped (a model's embedding table is larger than the vocabulary: CodeGen has 51200 rows for 50295 tokens).
`clean_up_tokenization_spaces` is never applied: transformers ignores it for BPE tokenizers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from codegen_lsp.tokenizer.streaming import StreamingDecoder
from codegen_lsp.tokenizer.truncation import truncate_before_pattern as _truncate

BUNDLED_TOKENIZER_DIR = Path(__file__).resolve().parent / "data"
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
ADDED_TOKENS_FILE = "added_tokens.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

# CodeGen's defaults when no config names them (transformers' CodeGenTokenizer.__init__).
DEFAULT_SPECIAL_TOKENS = {
    "unk_token": "<|endoftext|>",
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
}
# The config keys whose values transformers registers as special tokens.
_SPECIAL_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
_SPECIAL_TOKEN_LIST_KEYS = ("additional_special_tokens", "extra_special_tokens")
_ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


class TokenizerLoadError(ValueError):
    """A tokenizer folder lacks a file or holds a corrupt one; the message names the folder and the file."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the alphabet of byte-level BPE tokens)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


_BYTE_OF_CHAR = {char: byte for byte, char in bytes_to_unicode().items()}
# str.translate table taking a byte-level character to the latin-1 character of its byte.
_BYTE_LEVEL_TO_LATIN1 = {ord(char): byte for char, byte in _BYTE_OF_CHAR.items()}
_BYTE_LEVEL_TOKEN = re.compile("[" + re.escape("".join(_BYTE_OF_CHAR)) + "]*")


def _byte_level_token_bytes(token: str) -> bytes:
    """The bytes `decoders.ByteLevel` turns `token` into: its mapped bytes, or its own UTF-8 when any
    character is outside the byte-level alphabet (checked against `tokenizers` in the tests)."""
    if _BYTE_LEVEL_TOKEN.fullmatch(token):
        return token.translate(_BYTE_LEVEL_TO_LATIN1).encode("latin-1")
    return token.encode("utf-8")


def _read_json(folder: Path, name: str, required: bool) -> Any:
    path = folder / name
    if not path.is_file():
        if required:
            raise TokenizerLoadError(f"tokenizer folder {folder} has no {name}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerLoadError(f"corrupt {name} in tokenizer folder {folder}: {error}") from error


def _read_merges(folder: Path) -> list[tuple[str, str]]:
    """Parse merges.txt the way `tokenizers`' `BPE.read_file` does (which transformers hands the file to)."""
    path = folder / MERGES_FILE
    if not path.is_file():
        raise TokenizerLoadError(f"tokenizer folder {folder} has no {MERGES_FILE}")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenizerLoadError(f"corrupt {MERGES_FILE} in tokenizer folder {folder}: {error}") from error
    if lines[-1] == "":
        lines.pop()
    merges = []
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerLoadError(
                f"corrupt {MERGES_FILE} in tokenizer folder {folder}: line {number} is not two tokens: {line!r}"
            )
        merges.append((parts[0], parts[1]))
    return merges


def _object_json(value: Any, folder: Path, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TokenizerLoadError(f"corrupt {name} in tokenizer folder {folder}: expected a JSON object")
    return value


def _token_content(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _special_added_token(value: Any) -> AddedToken | None:
    """A config entry (a string, or transformers' serialized AddedToken dict) as a special AddedToken."""
    content = _token_content(value)
    if content is None:
        return None
    flags = {key: value[key] for key in _ADDED_TOKEN_FLAGS if isinstance(value, dict) and key in value}
    flags["special"] = True
    return AddedToken(content, **flags)


def _special_token_entries(config: dict[str, Any]) -> list[Any]:
    entries = [config[key] for key in _SPECIAL_TOKEN_KEYS if config.get(key) is not None]
    for key in _SPECIAL_TOKEN_LIST_KEYS:
        value = config.get(key)
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            entries.extend(value)
    return entries


def _named_special_tokens(tokenizer_config: dict[str, Any], special_tokens_map: dict[str, Any]) -> dict[str, Any]:
    """The special-token settings transformers ends up with: CodeGen's defaults, then tokenizer_config.json,
    then special_tokens_map.json (which transformers skips when the config has an `added_tokens_decoder`)."""
    if "added_tokens_decoder" in tokenizer_config:
        return {**DEFAULT_SPECIAL_TOKENS, **tokenizer_config}
    return {**DEFAULT_SPECIAL_TOKENS, **tokenizer_config, **special_tokens_map}


def _added_tokens_from_config(entries: Any, folder: Path) -> list[tuple[int, AddedToken]]:
    """`added_tokens_decoder` of a tokenizer_config.json saved by transformers >= 4.34: id -> token fields."""
    if not isinstance(entries, dict):
        raise TokenizerLoadError(
            f"corrupt {TOKENIZER_CONFIG_FILE} in tokenizer folder {folder}: added_tokens_decoder is not an object"
        )
    added = []
    for key, fields in entries.items():
        content = _token_content(fields)
        if content is None or not str(key).isdigit():
            raise TokenizerLoadError(
                f"corrupt {TOKENIZER_CONFIG_FILE} in tokenizer folder {folder}: "
                f"added_tokens_decoder entry {key!r}: {fields!r}"
            )
        flags = {name: fields[name] for name in _ADDED_TOKEN_FLAGS if name in fields}
        added.append((int(key), AddedToken(content, **flags)))
    return added


def _added_tokens_from_file(entries: dict[str, Any], specials: set[str], folder: Path) -> list[tuple[int, AddedToken]]:
    """added_tokens.json (content -> id), flagged as transformers flags it: special when a config names the
    token, and then not `normalized`."""
    added = []
    for content, token_id in entries.items():
        if not isinstance(token_id, int) or isinstance(token_id, bool):
            raise TokenizerLoadError(
                f"corrupt {ADDED_TOKENS_FILE} in tokenizer folder {folder}: id of {content!r} is not an integer"
            )
        special = content in specials
        token = AddedToken(content, lstrip=False, rstrip=False, normalized=not special, special=special)
        added.append((token_id, token))
    return added


class CodeGenTokenizer:
    """Encode/decode like transformers' `CodeGenTokenizer`, with the Rust backend exposed as `backend`.

    `eos_token_id`/`bos_token_id` are None when the tokenizer has no such token; `vocab_size` counts added
    tokens; `is_byte_level` says whether token_bytes are GPT-2 byte-level bytes (streaming relies on it).
    """

    def __init__(
        self,
        backend: Tokenizer,
        tokenizer_config: dict[str, Any] | None = None,
        special_tokens_map: dict[str, Any] | None = None,
        hub_files: tuple[dict[str, int], list[tuple[str, str]]] | None = None,
    ) -> None:
        """Wrap a ready `backend`; `hub_files` (vocab, merges) lets `save` write the Hub layout."""
        self.backend = backend
        self._tokenizer_config = dict(tokenizer_config or {})
        self._special_tokens_map = dict(special_tokens_map or {})
        self._hub_files = hub_files
        named = _named_special_tokens(self._tokenizer_config, self._special_tokens_map)
        self.bos_token_id: int | None = self._named_token_id(named.get("bos_token"))
        self.eos_token_id: int | None = self._named_token_id(named.get("eos_token"))
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)
        self._added: dict[int, AddedToken] = dict(backend.get_added_tokens_decoder())
        self._special_ids = frozenset(i for i, token in self._added.items() if token.special)
        self.is_byte_level: bool = isinstance(backend.decoder, decoders.ByteLevel)
        self._token_bytes_cache: dict[int, bytes] = {}

    def _named_token_id(self, value: Any) -> int | None:
        content = _token_content(value)
        return None if content is None else self.backend.token_to_id(content)

    # -- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path) -> CodeGenTokenizer:
        """Load tokenizer.json when the folder has one, else the Hub layout (vocab.json, merges.txt, ...)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TokenizerLoadError(f"tokenizer folder {folder} does not exist")
        tokenizer_config = _object_json(
            _read_json(folder, TOKENIZER_CONFIG_FILE, required=False), folder, TOKENIZER_CONFIG_FILE
        )
        special_tokens_map = _object_json(
            _read_json(folder, SPECIAL_TOKENS_MAP_FILE, required=False), folder, SPECIAL_TOKENS_MAP_FILE
        )
        if (folder / TOKENIZER_FILE).is_file():
            return cls._from_tokenizer_json(folder, tokenizer_config, special_tokens_map)
        return cls._from_hub_layout(folder, tokenizer_config, special_tokens_map)

    @classmethod
    def _from_tokenizer_json(
        cls, folder: Path, tokenizer_config: dict[str, Any], special_tokens_map: dict[str, Any]
    ) -> CodeGenTokenizer:
        try:
            backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        except Exception as error:  # tokenizers raises plain Exception for every kind of bad file
            raise TokenizerLoadError(f"corrupt {TOKENIZER_FILE} in tokenizer folder {folder}: {error}") from error
        # Config-named special tokens the file knows but does not flag as special become special (as in
        # transformers); tokens it does not know are not invented, so the vocabulary size stays the file's.
        named = {**tokenizer_config, **special_tokens_map}
        specials = [
            token
            for token in map(_special_added_token, _special_token_entries(named))
            if token is not None and backend.token_to_id(token.content) is not None
        ]
        if specials:
            backend.add_special_tokens(specials)
        return cls(backend, tokenizer_config, special_tokens_map)

    @classmethod
    def _from_hub_layout(
        cls, folder: Path, tokenizer_config: dict[str, Any], special_tokens_map: dict[str, Any]
    ) -> CodeGenTokenizer:
        vocab = _read_json(folder, VOCAB_FILE, required=True)
        if not isinstance(vocab, dict) or not all(
            isinstance(token, str) and isinstance(i, int) and not isinstance(i, bool) and i >= 0
            for token, i in vocab.items()
        ):
            raise TokenizerLoadError(
                f"corrupt {VOCAB_FILE} in tokenizer folder {folder}: expected an object of token -> id"
            )
        merges = _read_merges(folder)
        named = _named_special_tokens(tokenizer_config, special_tokens_map)
        special_entries = _special_token_entries(named)
        if "added_tokens_decoder" in tokenizer_config:
            added = _added_tokens_from_config(tokenizer_config["added_tokens_decoder"], folder)
            source = TOKENIZER_CONFIG_FILE
        else:
            added_json = _read_json(folder, ADDED_TOKENS_FILE, required=False)
            specials = {_token_content(value) for value in special_entries} - {None}
            added = _added_tokens_from_file(_object_json(added_json, folder, ADDED_TOKENS_FILE), specials, folder)
            source = ADDED_TOKENS_FILE
        try:
            backend = Tokenizer(
                BPE(
                    vocab=vocab,
                    merges=merges,
                    dropout=None,
                    continuing_subword_prefix="",
                    end_of_word_suffix="",
                    fuse_unk=False,
                )
            )
        except Exception as error:
            raise TokenizerLoadError(
                f"corrupt {MERGES_FILE} in tokenizer folder {folder} (does not fit {VOCAB_FILE}): {error}"
            ) from error
        # The pipeline of transformers' CodeGenTokenizer.__init__ (add_prefix_space from the config too).
        add_prefix_space = bool(tokenizer_config.get("add_prefix_space", False))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.ByteLevel(add_prefix_space=True, use_regex=True, trim_offsets=False)

        # In id order, so that each token not in vocab.json gets the next id, as the file says it should.
        for token_id, token in sorted(added, key=lambda item: item[0]):
            (backend.add_special_tokens if token.special else backend.add_tokens)([token])
            if backend.token_to_id(token.content) != token_id:
                raise TokenizerLoadError(
                    f"corrupt {source} in tokenizer folder {folder}: {token.content!r} "
                    f"should have id {token_id} but gets {backend.token_to_id(token.content)}"
                )
        # Special tokens the configs name (CodeGen's `<|endoftext|>` is in vocab.json), as transformers does.
        backend.add_special_tokens([t for t in map(_special_added_token, special_entries) if t is not None])
        return cls(backend, tokenizer_config, special_tokens_map, hub_files=(vocab, merges))

    @classmethod
    @functools.cache
    def bundled(cls) -> CodeGenTokenizer:
        """CodeGen's tokenizer shipped with the package; loaded once per process."""
        return cls.from_folder(BUNDLED_TOKENIZER_DIR)

    # -- encoding and decoding -------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; no BOS/EOS is added (CodeGen prompts have none)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and each token's `(start, end)` in `text` as Python str indices (code points).

        Tokens holding part of a multi-byte character all span that whole character."""
        encoding = self.backend.encode(text, add_special_tokens=False)
        return encoding.ids, encoding.offsets

    def decode(
        self,
        ids: Sequence[int],
        skip_special_tokens: bool = False,
        truncate_before_pattern: Sequence[str] | None = None,
    ) -> str:
        """Exactly transformers' `CodeGenTokenizer.decode` with the same arguments."""
        if not isinstance(ids, list):
            ids = [int(i) for i in ids]
        text = self.backend.decode(ids, skip_special_tokens=skip_special_tokens)
        if truncate_before_pattern:
            text = _truncate(text, truncate_before_pattern)
        return text

    def id_to_token(self, token_id: int) -> str | None:
        """The token's string in the vocabulary (byte-level characters, or an added token's content)."""
        return self.backend.id_to_token(token_id)

    def is_added(self, token_id: int) -> bool:
        """Added tokens (CodeGen's whitespace runs, `<|endoftext|>`) decode to their content verbatim."""
        return token_id in self._added

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes `token_id` stands for: what decoding it contributes before UTF-8 decoding.

        Special tokens give their content here; skipping them is the caller's choice. Raises ValueError for an
        id the tokenizer does not have."""
        cached = self._token_bytes_cache.get(token_id)
        if cached is not None:
            return cached
        token = self.backend.id_to_token(token_id) if token_id >= 0 else None
        if token is None:
            raise ValueError(f"token id {token_id} is not in the tokenizer (vocab_size {self.vocab_size})")
        if token_id in self._added:
            result = token.encode("utf-8")
        elif self.is_byte_level:
            result = _byte_level_token_bytes(token)
        else:
            result = self.backend.decode([token_id], skip_special_tokens=False).encode("utf-8")
        self._token_bytes_cache[token_id] = result
        return result

    def stream_decoder(self, skip_special_tokens: bool = True) -> StreamingDecoder:
        """A decoder for ids arriving one at a time, e.g. the tokens of a generation."""
        return StreamingDecoder(self, skip_special_tokens=skip_special_tokens)

    # -- saving ----------------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write the tokenizer so that both `from_folder` and transformers can load it.

        A tokenizer loaded from the Hub layout writes that layout (in transformers' formatting) plus
        tokenizer.json; one loaded from tokenizer.json writes tokenizer.json and tokenizer_config.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = dict(self._tokenizer_config)
        for key, token_id in (("bos_token", self.bos_token_id), ("eos_token", self.eos_token_id)):
            if token_id is not None and key not in config and key not in self._special_tokens_map:
                config[key] = self.backend.id_to_token(token_id)
        if self._hub_files is not None:
            vocab, merges = self._hub_files
            _write_json(folder / VOCAB_FILE, vocab)
            merges_text = "".join(f"{left} {right}\n" for left, right in merges)
            (folder / MERGES_FILE).write_text("#version: 0.2\n" + merges_text, encoding="utf-8")
            added = {
                token.content: token_id for token_id, token in sorted(self._added.items()) if token_id >= len(vocab)
            }
            _write_json(folder / ADDED_TOKENS_FILE, added)
            if self._special_tokens_map:
                _write_json(folder / SPECIAL_TOKENS_MAP_FILE, self._special_tokens_map)
        _write_json(folder / TOKENIZER_CONFIG_FILE, config)
        self.backend.save(str(folder / TOKENIZER_FILE))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
