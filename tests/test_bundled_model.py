"""The bundled offline model (inference/bundled/) loads, matches transformers, and has learned Python.

scripts/train_bundled_model.py trains it and scripts/evaluate_bundled_model.py measures it (REPORT.md);
these are the fast checks that a missing, corrupt, mis-converted or untrained file fails. Offline: everything
is read from the folder.
"""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from codegen_lsp.inference.checkpoint.hub import BUNDLED, BUNDLED_MODEL_DIR, resolve_model_folder
from codegen_lsp.inference.checkpoint.loading import LoadedModel, load, load_folder
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions, ModelSpec
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.inference.worker.engine import Engine

FOLDER = BUNDLED_MODEL_DIR
RUN_FILE = "training_run.json"  # scripts/train_bundled_model.py's record of the run
MAX_WEIGHTS_BYTES = 40_000_000

# Written for this test, so in no standard-library file: never trained on.
HELD_OUT_SNIPPET = '''\
import os
import sys
from collections import defaultdict


class Inventory:
    """Counts items by kind."""

    def __init__(self, path):
        self.path = path
        self.counts = defaultdict(int)

    def load(self):
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                kind, _, number = line.partition("=")
                self.counts[kind.strip()] += int(number)
        return self

    def total(self):
        return sum(self.counts.values())


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    for path in argv:
        if not os.path.exists(path):
            print(f"{path}: no such file", file=sys.stderr)
            return 1
        print(path, Inventory(path).load().total())
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

SNIPPETS = [
    "import os\nimport ",
    "def __init__(self",
    HELD_OUT_SNIPPET,
    "\tif x:\n\t\treturn 'café ☕'  # 日本語\n" + " " * 40 + "y = 1\r\n",
]


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_folder(FOLDER, "cpu", "float32")


@pytest.fixture(scope="module")
def engine(loaded: LoadedModel) -> Engine:
    return Engine(loaded, cache_slots=1)


def complete_line(engine: Engine, prompt: str) -> str:
    options = GenerationOptions(max_new_tokens=32, stop_rule=StopRule(patterns=(), single_line=True))
    result = engine.generate(CompletionRequest(1, "test_bundled_model", prompt, options))
    return result.candidates[0].text.split("\n", 1)[0]


def test_the_folder_is_in_the_hub_layout() -> None:
    config = json.loads((FOLDER / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "codegen"
    assert config["architectures"] == ["CodeGenForCausalLM"]
    assert (FOLDER / "tokenizer.json").is_file() and (FOLDER / "tokenizer_config.json").is_file()
    assert (FOLDER / "model.safetensors").stat().st_size <= MAX_WEIGHTS_BYTES
    assert resolve_model_folder(BUNDLED) == FOLDER


def test_it_loads_through_our_loader(loaded: LoadedModel) -> None:
    config = loaded.config
    assert loaded.tokenizer.vocab_size == config.vocab_size
    assert loaded.tokenizer.eos_token_id == config.eos_token_id == config.bos_token_id
    assert config.tie_word_embeddings
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.wte.weight.data_ptr()  # one copy in memory
    product = load(ModelSpec(model=BUNDLED, device="cpu"))  # `--model bundled`, in the CPU's default dtype
    assert product.folder == FOLDER and product.warning is None


def test_transformers_gives_the_same_logits(loaded: LoadedModel) -> None:
    transformers = pytest.importorskip("transformers")
    theirs = transformers.CodeGenForCausalLM.from_pretrained(FOLDER, dtype=torch.float32).eval()
    assert theirs.lm_head.weight.data_ptr() == theirs.transformer.wte.weight.data_ptr()  # loaded tied
    for text in SNIPPETS:
        ids = torch.tensor([loaded.tokenizer.encode(text)])  # (1, T)
        with torch.no_grad():
            expected = theirs(ids).logits  # (1, T, V)
            actual = loaded.model(ids)  # (1, T, V)
        assert (actual - expected).abs().max().item() <= 1e-4, text


def test_the_tokenizer_round_trips_python_source(loaded: LoadedModel) -> None:
    tokenizer = loaded.tokenizer
    sources = [*SNIPPETS, *(Path(path).read_text(encoding="utf-8") for path in (__file__, ast.__file__))]
    for source in sources:
        assert tokenizer.decode(tokenizer.encode(source)) == source
    for indentation in (" " * 4, " " * 8, " " * 12, "\t", "\t\t"):  # indentation costs one token
        assert len(tokenizer.encode(indentation)) == 1
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(FOLDER)
    for source in sources:
        assert theirs.encode(source, add_special_tokens=False) == tokenizer.encode(source)


def test_it_has_learned_python(loaded: LoadedModel) -> None:
    """On code it never saw, far below a uniform guess (log V nats) and below the unigram baseline."""
    ids = torch.tensor(loaded.tokenizer.encode(HELD_OUT_SNIPPET))  # (T,)
    with torch.no_grad():
        logits = loaded.model(ids[None, :-1])[0]  # (T - 1, V)
    loss = F.cross_entropy(logits, ids[1:]).item()
    counts = json.loads((FOLDER / RUN_FILE).read_text(encoding="utf-8"))["train_unigram_counts"]
    smoothed = torch.tensor(counts, dtype=torch.float64) + 1.0
    unigram_loss = -(smoothed.log() - smoothed.sum().log())[ids[1:]].mean().item()
    assert loss < 0.4 * math.log(loaded.config.vocab_size)
    assert loss < unigram_loss - 2.0


def test_it_completes_an_import_with_a_module(engine: Engine) -> None:
    # No space after the last `import`: byte-level BPE joins a space to the word after it (" sys"), so a prompt
    # ending in a space ends in a lone-space token that training text almost never has before a name.
    line = complete_line(engine, "import os\nimport")
    module = line.strip().split()[0].split(".")[0].rstrip(",") if line.strip() else ""
    assert module in sys.stdlib_module_names, line


def parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def test_it_completes_a_method_header(engine: Engine) -> None:
    prefix = "class Point:\n    def __init__(self"
    line = complete_line(engine, prefix)
    assert line[:1] in (",", ")"), line  # more parameters, or the end of the list
    # A valid header, or a valid start of one that the token limit cut (a small model may repeat itself).
    assert any(parses(prefix + line + close + "\n        pass\n") for close in ("", "):")), line
