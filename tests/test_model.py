"""Our CodeGen gives transformers' numbers: full forwards, cached step-by-step decoding and greedy generation."""

from __future__ import annotations

import pytest
import torch

from codegen_lsp.inference.checkpoint.config import CodeGenConfig
from codegen_lsp.inference.checkpoint.layout import qkv_row_order, to_checkpoint, to_ours
from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.model.codegen import CodeGen
from codegen_lsp.inference.model.generate import prefill
from codegen_lsp.inference.model.kv_cache import KVCache
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
from codegen_lsp.inference.worker.engine import Engine
from tests.checkpoints import FORMATS, hf_state_dict, tiny_hf_model, write_checkpoint

TOLERANCE = 1e-4
PROMPTS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    'import os\nimport sys\n\n\nclass Config:\n    """Settings."""\n\n    def __init__(self',
    "for i in range(10):\n\tprint(i)  # tabs\n",
    "x = {'a': 1, 'b': [1, 2, 3]}\n# 🙂 unicode ünïcödé\n",
]


def ours_from(hf_model) -> CodeGen:
    config = CodeGenConfig.from_dict(hf_model.config.to_dict())
    model = CodeGen(config).eval()
    model.load_state_dict(to_ours(hf_state_dict(hf_model).__getitem__, config, torch.float32))
    return model


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_dense() if tensor.layout == torch._mkldnn else tensor


def hf_logits(hf_model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(ids).logits


@pytest.fixture(scope="module")
def token_batches(tiny_loaded) -> list[torch.Tensor]:
    return [torch.tensor([tiny_loaded.tokenizer.encode(p)]) for p in PROMPTS]


def test_full_forward_logits_match_transformers(tiny_loaded, hf_tiny, token_batches):
    for ids in token_batches:
        with torch.no_grad():
            ours = tiny_loaded.model(ids)
        assert (ours - hf_logits(hf_tiny, ids)).abs().max() <= TOLERANCE


def test_long_random_sequence_matches_transformers(tiny_loaded, hf_tiny):
    ids = torch.randint(0, 50295, (1, 250), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = tiny_loaded.model(ids)
    assert (ours - hf_logits(hf_tiny, ids)).abs().max() <= TOLERANCE


def test_step_by_step_decoding_with_the_cache_matches_a_full_forward(tiny_loaded, hf_tiny, token_batches):
    """Prefill half, then one token at a time, then a chunk: every position's logits equal transformers'."""
    model, config = tiny_loaded.model, tiny_loaded.config
    for ids in token_batches:
        n = ids.shape[1]
        cache = KVCache(config, config.n_positions, torch.float32, "cpu")
        pieces = []
        with torch.no_grad():
            half = n // 2
            pieces.append(model(ids[:, :half], torch.arange(half), cache))
            for t in range(half, n - 3):
                pieces.append(model(ids[:, t : t + 1], torch.tensor([t]), cache))
            pieces.append(model(ids[:, n - 3 :], torch.arange(n - 3, n), cache))
        assert (torch.cat(pieces, dim=1) - hf_logits(hf_tiny, ids)).abs().max() <= TOLERANCE


def test_cached_decoding_matches_transformers_own_cache(tiny_loaded, hf_tiny, token_batches):
    from transformers import DynamicCache

    model, config = tiny_loaded.model, tiny_loaded.config
    ids = token_batches[0]
    cache = KVCache(config, config.n_positions, torch.float32, "cpu")
    hf_cache = DynamicCache(config=hf_tiny.config)
    with torch.no_grad():
        ours = prefill(model, ids[0], 0, cache)
        ref = hf_tiny(ids, cache=hf_cache, use_cache=True).logits[0, -1]
        assert (ours - ref).abs().max() <= TOLERANCE
        token = int(ref.argmax())
        for position in range(ids.shape[1], ids.shape[1] + 20):
            ours = model(torch.tensor([[token]]), torch.tensor([position]), cache)[0, -1]
            ref = hf_tiny(torch.tensor([[token]]), cache=hf_cache, use_cache=True).logits[0, -1]
            assert (ours - ref).abs().max() <= TOLERANCE
            token = int(ref.argmax())


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_is_token_equal_to_transformers(tiny_loaded, hf_tiny, prompt):
    ids = torch.tensor([tiny_loaded.tokenizer.encode(prompt)])
    with torch.no_grad():
        ref = hf_tiny.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=40,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )[0, ids.shape[1] :].tolist()
    engine = Engine(tiny_loaded)
    # EOS is a token like any other here: transformers ran without it, so give our engine none either.
    engine.eos_ids = ()
    result = engine.generate(CompletionRequest(1, "doc", prompt, GenerationOptions(max_new_tokens=40)))
    assert list(result.candidates[0].token_ids) == ref
    assert len(ref) == 40


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_file_format_loads_to_identical_tensors(hf_tiny, tiny_loaded, tmp_path, fmt):
    folder = write_checkpoint(tmp_path / fmt, hf_tiny, fmt)
    loaded = load_folder(folder, "cpu", "float32")
    expected = tiny_loaded.model.state_dict()
    got = loaded.model.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:  # a matrix packed for oneDNN on load is compared as the plain matrix it stands for
        assert torch.equal(plain(expected[key]), plain(got[key])), key


@pytest.mark.parametrize(
    "overrides",
    [
        {"tie_word_embeddings": True},
        {"n_inner": 96, "activation_function": "gelu"},
        {"activation_function": "relu"},
        {"activation_function": "silu"},
        {"activation_function": "gelu_fast"},
        {"rotary_dim": 8, "n_head": 8},  # rotary over the whole head
        {"n_head": 4, "n_embd": 64, "rotary_dim": 16},
        {"layer_norm_epsilon": 1e-3},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_config_variants_match_transformers(tmp_path, overrides):
    hf_model = tiny_hf_model(seed=3, **overrides)
    folder = write_checkpoint(tmp_path / "m", hf_model, "safetensors")
    loaded = load_folder(folder, "cpu", "float32")
    ids = torch.randint(0, 50295, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (loaded.model(ids) - hf_logits(hf_model, ids)).abs().max() <= TOLERANCE


def test_layout_conversion_round_trips_exactly(hf_tiny):
    config = CodeGenConfig.from_dict(hf_tiny.config.to_dict())
    state = hf_state_dict(hf_tiny)
    back = to_checkpoint(to_ours(state.__getitem__, config, torch.float32), config)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_qkv_row_order_is_a_permutation(hf_tiny):
    config = CodeGenConfig.from_dict(hf_tiny.config.to_dict())
    order = qkv_row_order(config)
    assert sorted(order.tolist()) == list(range(3 * config.n_embd))


def test_swapping_q_and_k_is_caught_by_the_tolerance(hf_tiny, token_batches):
    """The parity tests can fail: a layout mistake moves the logits far beyond the tolerance."""
    model = ours_from(hf_tiny)
    E = model.config.n_embd
    with torch.no_grad():
        weight = model.h[0].in_proj.weight
        q, k = weight[:E].clone(), weight[E : 2 * E].clone()
        weight[:E], weight[E : 2 * E] = k, q
        diff = (model(token_batches[0]) - hf_logits(hf_tiny, token_batches[0])).abs().max()
    assert diff > 100 * TOLERANCE
