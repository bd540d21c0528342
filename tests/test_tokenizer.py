"""CodeGenTokenizer encodes and decodes exactly like transformers' CodeGenTokenizer from the same folder.

transformers is the oracle and appears only here, in tests; runtime code never imports it.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR, CodeGenTokenizer, TokenizerLoadError

REPO_ROOT = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
STDLIB_EVERY = 8  # every 8th of the sorted stdlib *.py files: 224 files on CPython 3.11
STDLIB_CHARS = 16_000  # of each file, to keep the test fast (a prompt is ~1500 tokens, ~6000 characters)

ENDOFTEXT = 50256
FOUR_SPACES = 50284

HAND_WRITTEN = [
    "",
    "Hello world",
    " Hello world",
    "    if",
    "return    1",
    "def f(x):\n    return x  \n",  # trailing spaces
    " " * 100 + "x",  # a space run longer than the longest whitespace token (31)
    "\t" * 23 + "y\t\t\t",  # tab runs longer than the longest tab token (9)
    " \t  \t\t   \t\t\t    x",  # spaces and tabs mixed
    "if x:\r\n\treturn 1\r\n        pass\r\n",  # CRLF
    "s = '😀👍🏽🇫🇷'  # emoji\n",
    "名前 = '中文字符' + 'ｶﾀｶﾅ' + '한국어'\n",
    "a<|endoftext|>b",
    "x = 1\n<|endoftext|>\n    def g():\n\t\tpass<|endoftext|><|endoftext|>",
    "<|endoftext",  # not the special token
    "   \n\n\n   ",
    "\x00\x01\x7f\u00a0\u00ad\u200b\ufeff",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑ ≠ ∞ é e\u0301",
    "tab\tinside  two  spaces   three",
]

# Code-ish pieces, so random texts hit whitespace tokens, the special token and split UTF-8 characters.
FRAGMENTS = [
    " ", "  ", "    ", " " * 33, "\t", "\t\t", "\t" * 11, "\n", "\r\n", "\n\n\n", "def ", "print(", "return ",
    "#", "'''", '"""', "x", "if", "_", "1", "😀", "中", "é", "<|endoftext|>", "<|", "|>", "ĠĊ",
]  # fmt: skip
code_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=40).map("".join)


@functools.cache
def hf_tokenizer():
    from transformers import CodeGenTokenizer as HFCodeGenTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()  # stdlib files are longer than model_max_length; transformers only warns
    return HFCodeGenTokenizer.from_pretrained(str(BUNDLED_TOKENIZER_DIR))


def stdlib_paths(pattern: str) -> list[Path]:
    """Sorted stdlib files matching `pattern`, without site-packages (not the standard library, and huge)."""
    found = []
    for folder, subfolders, names in os.walk(STDLIB):
        subfolders[:] = [name for name in subfolders if name not in ("site-packages", "__pycache__")]
        found.extend(Path(folder, name) for name in names if fnmatch.fnmatch(name, pattern))
    return sorted(found)


def read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")[:STDLIB_CHARS]
    except UnicodeDecodeError:
        return None


@functools.cache
def stdlib_files() -> tuple[tuple[str, str], ...]:
    """(name, text) of every STDLIB_EVERY-th sorted stdlib *.py file, UTF-8 ones only."""
    texts = ((str(p.relative_to(STDLIB)), read_text(p)) for p in stdlib_paths("*.py")[::STDLIB_EVERY])
    return tuple((name, text) for name, text in texts if text is not None)


@functools.cache
def tab_files() -> tuple[tuple[str, str], ...]:
    """Text with tabs: the stdlib has no *.py file with a tab, so take its other text files that have tabs
    (Makefile, Grammar.txt, mail samples, ...) and tab-indented copies of some stdlib Python files."""
    files = []
    for path in stdlib_paths("*"):
        text = read_text(path) if path.suffix not in (".py", ".pyc") else None
        if text is not None and "\t" in text:
            files.append((str(path.relative_to(STDLIB)), text))
    for name, text in stdlib_files()[:20]:
        tabbed = re.sub(r"^(?:    )+", lambda m: "\t" * (len(m.group()) // 4), text, flags=re.MULTILINE)
        files.append((name + " (tab-indented)", tabbed))
    return tuple(files)


@pytest.fixture(scope="module")
def tok() -> CodeGenTokenizer:
    return CodeGenTokenizer.bundled()


# -- encoding ------------------------------------------------------------------------------------------------


def test_seed_examples(tok):
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" Hello world") == [18435, 995]
    assert tok.encode("    if") == [FOUR_SPACES, 361]


def test_whitespace_tokens_are_matched_before_bpe(tok):
    ids = tok.encode("return    1")
    assert [tok.id_to_token(i) for i in ids] == ["return", "    ", "1"]
    assert tok.encode(" " * 31) == [50257]
    assert tok.encode("  ") == [50286]
    assert tok.encode("\t" * 9) == [50287]
    assert tok.encode("\t\t") == [50294]


def test_vocabulary_and_special_tokens(tok):
    assert tok.vocab_size == 50295
    assert tok.eos_token_id == ENDOFTEXT and tok.bos_token_id == ENDOFTEXT
    assert tok.is_special(ENDOFTEXT)
    assert not any(tok.is_special(i) for i in (0, 15496, 50257, FOUR_SPACES, 50294))
    assert tok.encode("a<|endoftext|>b") == [64, ENDOFTEXT, 65]


def test_encode_adds_no_bos_or_eos(tok):
    assert tok.encode("") == []
    assert tok.encode("x") == [87]


def test_bundled_is_loaded_once():
    assert CodeGenTokenizer.bundled() is CodeGenTokenizer.bundled()


def test_runtime_imports_neither_transformers_nor_torch():
    code = (
        "import sys; from codegen_lsp.tokenizer import CodeGenTokenizer; t = CodeGenTokenizer.bundled(); "
        "t.decode(t.encode('def f(): pass'), truncate_before_pattern=['^#']); "
        "list(map(t.stream_decoder().push, t.encode('x'))); "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def local_imports(module: Path) -> set[str]:
    """The modules of tokenizer/ that `module` imports, at run time or only for type checking alike
    (`from . import NAME` imports the package, "__init__", unless NAME is a module)."""
    siblings = {path.stem for path in module.parent.glob("*.py")}
    imported = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1 and node.module:
            imported.add(node.module)
        elif node.level == 1:
            imported.update(alias.name if alias.name in siblings else "__init__" for alias in node.names)
        elif (node.module or "").startswith("codegen_lsp.tokenizer"):
            imported.add(node.module.removeprefix("codegen_lsp.tokenizer").lstrip(".") or "__init__")
    return imported


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports that comes back to where it started, or None."""
    finished: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in finished:
            return None
        for imported in sorted(graph.get(name, ())):
            cycle = visit(imported, path + [name])
            if cycle:
                return cycle
        finished.add(name)
        return None

    return next(filter(None, (visit(name, []) for name in sorted(graph))), None)


def test_tokenizer_modules_import_each_other_without_a_cycle():
    graph = {path.stem: local_imports(path) for path in (REPO_ROOT / "tokenizer").glob("*.py")}
    assert "streaming" in graph["codegen_tokenizer"]  # the edge that used to come back
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph))
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_stdlib_selection_is_large_enough():
    assert len(stdlib_files()) >= 200
    assert any(" " * 32 in text for _, text in stdlib_files())
    assert len(tab_files()) >= 30


def test_ids_equal_transformers_on_stdlib_files(tok):
    texts = [text for _, text in stdlib_files() + tab_files()]
    expected = hf_tokenizer()(texts)["input_ids"]
    for (name, text), ids in zip(stdlib_files() + tab_files(), expected, strict=True):
        assert tok.encode(text) == ids, name


def test_round_trip_on_stdlib_files(tok):
    for name, text in stdlib_files() + tab_files():
        assert tok.decode(tok.encode(text)) == text, name


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_ids_equal_transformers_on_hand_written_strings(tok, text):
    assert tok.encode(text) == hf_tokenizer()(text)["input_ids"]
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(code_text)
def test_ids_equal_transformers_on_random_text(text):
    tok = CodeGenTokenizer.bundled()
    ids = tok.encode(text)
    assert ids == hf_tokenizer()(text)["input_ids"]
    assert tok.decode(ids) == text


# -- offsets -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_offsets_equal_transformers(tok, text):
    ids, offsets = tok.encode_with_offsets(text)
    expected = hf_tokenizer()(text, return_offsets_mapping=True)
    assert ids == expected["input_ids"]
    assert offsets == [tuple(o) for o in expected["offset_mapping"]]


@settings(max_examples=200, deadline=None)
@given(code_text)
def test_offsets_are_python_string_indices(text):
    """Tokens cover the text in order; a token that is whole characters is exactly its slice of the text."""
    tok = CodeGenTokenizer.bundled()
    ids, offsets = tok.encode_with_offsets(text)
    assert len(offsets) == len(ids)
    end = 0
    for token_id, (start, stop) in zip(ids, offsets, strict=True):
        assert start <= stop and start >= end - 1 and stop >= end  # a split character is shared by its tokens
        assert tok.token_bytes(token_id) in text[start:stop].encode("utf-8")  # all of it, or part of a character
        end = stop
    assert end == len(text)


def test_offsets_on_stdlib_file(tok):
    name, text = stdlib_files()[0]
    ids, offsets = tok.encode_with_offsets(text)
    assert "".join(text[start:stop] for start, stop in offsets) == text, name


# -- decoding ------------------------------------------------------------------------------------------------

DECODE_CASES = [
    [ENDOFTEXT],
    [15496, ENDOFTEXT, 995, ENDOFTEXT],
    [FOUR_SPACES, 361, 50257, 50294, ENDOFTEXT, 50286],
    [30325, ENDOFTEXT, 222],  # an emoji split by a special token
    [30325, FOUR_SPACES, 222],  # an emoji split by a whitespace token
    [30325],  # half an emoji
    [15496, 50295, 51199, 995],  # ids past the vocabulary (the model's embedding has 51200 rows)
]


@pytest.mark.parametrize("ids", DECODE_CASES)
@pytest.mark.parametrize("skip", [False, True])
def test_decode_equals_transformers(tok, ids, skip):
    assert tok.decode(ids, skip_special_tokens=skip) == hf_tokenizer().decode(ids, skip_special_tokens=skip)


def test_decode_skips_special_tokens_only_when_asked(tok):
    ids = tok.encode("<|endoftext|>    x<|endoftext|>")
    assert tok.decode(ids) == "<|endoftext|>    x<|endoftext|>"
    assert tok.decode(ids, skip_special_tokens=True) == "    x"


def test_decode_accepts_any_int_sequence(tok):
    assert tok.decode((15496, 995)) == "Hello world"
    assert tok.decode(range(15496, 15497)) == "Hello"


special_heavy_ids = st.lists(
    st.one_of(
        st.integers(0, 50294),
        st.sampled_from([ENDOFTEXT, FOUR_SPACES, 50257, 50294, 30325, 222, 40792, 50295, 51199]),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(special_heavy_ids, st.booleans())
def test_decode_equals_transformers_on_random_ids(ids, skip):
    tok = CodeGenTokenizer.bundled()
    assert tok.decode(ids, skip_special_tokens=skip) == hf_tokenizer().decode(ids, skip_special_tokens=skip)


def test_token_bytes_agree_with_decode_for_every_id(tok):
    """token_bytes is what the Rust ByteLevel decoder turns each token into, for the whole vocabulary."""
    for token_id in range(tok.vocab_size):
        expected = tok.backend.decode([token_id], skip_special_tokens=False)
        assert tok.token_bytes(token_id).decode("utf-8", errors="replace") == expected, token_id


def test_token_bytes_concatenate_to_the_text(tok):
    text = "def f():\n\t\treturn '😀中'  <|endoftext|>"
    assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == text.encode("utf-8")
    assert tok.token_bytes(FOUR_SPACES) == b"    "
    assert tok.token_bytes(ENDOFTEXT) == b"<|endoftext|>"
    assert tok.token_bytes(30325) == " 😀".encode()[:4]  # " ðŁĺ": a space and 3 of the emoji's 4 bytes
    with pytest.raises(ValueError):
        tok.token_bytes(50295)


# -- saving and tokenizer.json -------------------------------------------------------------------------------


def test_save_writes_hub_layout_and_tokenizer_json(tok, tmp_path):
    tok.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "tokenizer_config.json",
        "tokenizer.json",
    } <= names
    assert json.loads((tmp_path / "added_tokens.json").read_text()) == json.loads(
        (BUNDLED_TOKENIZER_DIR / "added_tokens.json").read_text()
    )
    assert (tmp_path / "merges.txt").read_text() == (BUNDLED_TOKENIZER_DIR / "merges.txt").read_text()


def test_saved_tokenizer_loads_through_tokenizer_json_only(tok, tmp_path):
    tok.save(tmp_path)
    for path in tmp_path.iterdir():
        if path.name != "tokenizer.json":
            path.unlink()
    loaded = CodeGenTokenizer.from_folder(tmp_path)
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.eos_token_id == ENDOFTEXT and loaded.is_special(ENDOFTEXT)
    for name, text in stdlib_files()[:40] + tab_files()[:10] + tuple(("hand", t) for t in HAND_WRITTEN):
        assert loaded.encode(text) == tok.encode(text), name
    ids = tok.encode(HAND_WRITTEN[-2])
    assert loaded.decode(ids, skip_special_tokens=True) == tok.decode(ids, skip_special_tokens=True)


def test_saved_hub_layout_loads_here_and_in_transformers(tok, tmp_path):
    from transformers import CodeGenTokenizer as HFCodeGenTokenizer

    tok.save(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    loaded = CodeGenTokenizer.from_folder(tmp_path)
    hf = HFCodeGenTokenizer.from_pretrained(str(tmp_path))
    for text in HAND_WRITTEN:
        assert loaded.encode(text) == tok.encode(text) == hf(text)["input_ids"]


def test_folder_saved_by_transformers_5_loads(tok, tmp_path):
    """transformers 5 saves tokenizer.json + tokenizer_config.json only."""
    hf_tokenizer().save_pretrained(str(tmp_path))
    loaded = CodeGenTokenizer.from_folder(tmp_path)
    assert loaded.eos_token_id == ENDOFTEXT and loaded.vocab_size == tok.vocab_size
    for text in HAND_WRITTEN:
        assert loaded.encode(text) == tok.encode(text)


def test_hub_layout_with_added_tokens_decoder_in_config(tok, tmp_path):
    """Folders saved by transformers 4.34+ list added tokens in tokenizer_config.json."""
    from transformers import CodeGenTokenizer as HFCodeGenTokenizer

    folder = copy_bundled(tmp_path / "tok")
    added = json.loads((folder / "added_tokens.json").read_text())
    (folder / "added_tokens.json").unlink()
    (folder / "special_tokens_map.json").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    flags = {"lstrip": False, "rstrip": False, "single_word": False, "normalized": False}
    config["added_tokens_decoder"] = {
        str(ENDOFTEXT): {"content": "<|endoftext|>", **flags, "special": True},
        **{str(i): {"content": content, **flags, "special": False} for content, i in added.items()},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = CodeGenTokenizer.from_folder(folder)
    hf = HFCodeGenTokenizer.from_pretrained(str(folder))
    assert loaded.vocab_size == tok.vocab_size and loaded.is_special(ENDOFTEXT)
    for text in HAND_WRITTEN:
        assert loaded.encode(text) == tok.encode(text) == hf(text)["input_ids"]


def train_byte_level_bpe(texts: list[str]) -> Tokenizer:
    """A tiny tokenizer trained the way `tokenizers` trains GPT-2 style ones."""
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    trained.train_from_iterator(texts, trainer=trainer)
    return trained


def test_trained_tokenizer_json_loads_and_round_trips(tmp_path):
    trained = train_byte_level_bpe([text for _, text in stdlib_files()[:5]])
    trained.save(str(tmp_path / "tokenizer.json"))
    loaded = CodeGenTokenizer.from_folder(tmp_path)
    assert loaded.vocab_size == trained.get_vocab_size() == 400
    assert loaded.eos_token_id == trained.token_to_id("<|endoftext|>") == 0
    for text in HAND_WRITTEN + [text for _, text in stdlib_files()[5:10]]:
        ids = loaded.encode(text)
        assert ids == trained.encode(text).ids
        assert loaded.decode(ids) == text
        decoder = loaded.stream_decoder(skip_special_tokens=False)
        assert "".join(map(decoder.push, ids)) + decoder.flush() == text

    loaded.save(tmp_path / "again")
    assert {p.name for p in (tmp_path / "again").iterdir()} == {"tokenizer.json", "tokenizer_config.json"}
    again = CodeGenTokenizer.from_folder(tmp_path / "again")
    assert again.encode(HAND_WRITTEN[-1]) == loaded.encode(HAND_WRITTEN[-1])
    assert again.eos_token_id == loaded.eos_token_id


# -- load errors ---------------------------------------------------------------------------------------------


def copy_bundled(folder: Path) -> Path:
    folder.mkdir()
    for path in BUNDLED_TOKENIZER_DIR.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_missing_folder_is_a_load_error(tmp_path):
    with pytest.raises(TokenizerLoadError, match="nowhere"):
        CodeGenTokenizer.from_folder(tmp_path / "nowhere")


def test_empty_folder_names_vocab_json(tmp_path):
    with pytest.raises(TokenizerLoadError, match="vocab.json") as error:
        CodeGenTokenizer.from_folder(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_missing_merges_txt_is_named(tmp_path):
    folder = copy_bundled(tmp_path / "tok")
    (folder / "merges.txt").unlink()
    with pytest.raises(TokenizerLoadError, match="merges.txt") as error:
        CodeGenTokenizer.from_folder(folder)
    assert str(folder) in str(error.value)


@pytest.mark.parametrize(
    "name, content",
    [
        ("vocab.json", '{"a": 0, "b":'),  # cut short
        ("vocab.json", "[1, 2, 3]"),  # not an object
        ("vocab.json", '{"a": "zero"}'),  # not ids
        ("merges.txt", "#version: 0.2\nĠ t\nthree parts here\n"),
        ("merges.txt", "#version: 0.2\nnot-in vocab\n"),
        ("added_tokens.json", '{"  ": 50286,'),
        ("added_tokens.json", '{"  ": 7}'),  # an id that is already taken
        ("tokenizer_config.json", "{bad json"),
        ("tokenizer.json", '{"model": '),
    ],
)
def test_corrupt_file_is_named(tmp_path, name, content):
    folder = copy_bundled(tmp_path / "tok")
    (folder / name).write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerLoadError, match=re.escape(name)) as error:
        CodeGenTokenizer.from_folder(folder)
    assert str(folder) in str(error.value)
    assert isinstance(error.value, ValueError)
