"""Shared fixtures. Every test runs offline: the Hub is never reached, caches live in temporary folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports huggingface_hub: no network, and a Hugging Face cache of our own.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="codegen-lsp-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_TMP / "hf-home" / "hub")
os.environ["CODEGEN_LSP_CACHE"] = str(_SESSION_TMP / "codegen-lsp-cache")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Before torch loads, here and in the workers and servers the tests start: the tiny test models gain nothing
# from a second thread, and where cores are shared OpenMP's spinning threads made the engine tests ~10x slower
# (one edit-sequence example of test_engine.py: 0.4 s with one thread, 4-6 s with two, on 2 busy cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def hf_tiny():
    """A tiny transformers CodeGenForCausalLM with random weights: the oracle."""
    from tests.checkpoints import tiny_hf_model

    return tiny_hf_model(seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(hf_tiny, tmp_path_factory) -> Path:
    """hf_tiny saved as model.safetensors with the bundled CodeGen tokenizer, in the Hub layout."""
    from tests.checkpoints import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("tiny") / "codegen-tiny", hf_tiny, "safetensors")


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from codegen_lsp.inference.checkpoint.loading import load_folder

    return load_folder(tiny_model_dir, "cpu", "float32")
