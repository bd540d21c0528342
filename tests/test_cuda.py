"""The GPU path: run only where CUDA is present (CI has no GPU; the CPU side of this path is in test_device.py
and test_engine.py's static-cache test)."""

from __future__ import annotations

import pytest
import torch

from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
from codegen_lsp.inference.worker.engine import Engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n"


def test_float32_on_cuda_matches_transformers(tiny_model_dir, hf_tiny):
    loaded = load_folder(tiny_model_dir, "cuda", "float32")
    ids = torch.tensor([loaded.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        ours = loaded.model(ids.cuda()).cpu()
        ref = hf_tiny(ids).logits
    assert (ours - ref).abs().max() <= 1e-4


def test_auto_picks_float16_on_cuda(tiny_model_dir):
    assert load_folder(tiny_model_dir, "auto", "auto").dtype == torch.float16


def test_cuda_graph_decoding_gives_the_same_tokens_as_eager_decoding(tiny_model_dir):
    from codegen_lsp.inference.model.cuda_graphs import cuda_graph_decode_step

    loaded = load_folder(tiny_model_dir, "cuda", "float16")
    graphs = Engine(
        loaded, decode_step_factory=lambda cache: cuda_graph_decode_step(loaded.model, cache), static_cache=True
    )
    eager = Engine(loaded, static_cache=True)
    for prompt in (PROMPT, PROMPT + "    ", PROMPT[:20]):
        request = CompletionRequest(1, "doc", prompt, GenerationOptions(max_new_tokens=24))
        assert graphs.generate(request).candidates == eager.generate(request).candidates
