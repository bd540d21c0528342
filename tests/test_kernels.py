"""The CPU attention path for a few new queries over a bf16 cache gives SDPA's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from codegen_lsp.inference.model.kernels import FEW_QUERIES, attention, few_query_attention
from codegen_lsp.inference.model.kv_cache import KVCache

H, D, MAX_LEN, S = 4, 16, 64, 40
BF16_TOLERANCE = 2e-2  # bf16 keeps 8 bits of mantissa: outputs of magnitude ~1 are good to ~1e-2


def cache_slice(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of S positions as the cache hands them over: a slice of a longer buffer (not contiguous)."""
    generator = torch.Generator().manual_seed(seed)
    k = torch.randn(1, H, MAX_LEN, D, generator=generator).bfloat16()
    v = torch.randn(1, H, MAX_LEN, D, generator=generator).bfloat16()
    return k[:, :, :S], v[:, :, :S]


def causal_mask(T: int) -> torch.Tensor:
    """Queries at the last T positions of S: each sees the positions up to its own."""
    positions = torch.arange(S - T, S)
    return torch.arange(S)[None, :] <= positions[:, None]  # (T, S)


@pytest.mark.parametrize("T", [1, 9, FEW_QUERIES])
def test_few_query_attention_equals_fp32_sdpa(T):
    k, v = cache_slice(T)
    assert not k.is_contiguous()
    q = torch.randn(1, H, T, D, generator=torch.Generator().manual_seed(100 + T)).bfloat16()
    mask = None if T == 1 else causal_mask(T)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    ours = few_query_attention(q, k, v, mask)
    assert ours.shape == (1, H, T, D) and ours.dtype == torch.bfloat16
    assert (ours.float() - expected).abs().max() <= BF16_TOLERANCE


def test_masked_positions_do_not_reach_the_output():
    k, v = cache_slice(0)
    q = torch.randn(1, H, 3, D).bfloat16()
    mask = causal_mask(3)
    before = few_query_attention(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, -1], v2[:, :, -1] = 100.0, 100.0  # the last position: seen only by the last query
    after = few_query_attention(q, k2, v2, mask)
    assert torch.equal(before[:, :, :2], after[:, :, :2])
    assert not torch.equal(before[:, :, 2], after[:, :, 2])


def test_attention_uses_sdpa_outside_its_case():
    """fp32, many queries or a causal prefill: SDPA's own result, bit for bit."""
    k, v = cache_slice(1)
    q = torch.randn(1, H, S, D)
    assert torch.equal(
        attention(q, k.float(), v.float(), None, True, 0.0),
        F.scaled_dot_product_attention(q, k.float(), v.float(), is_causal=True),
    )
    q_bf16 = torch.randn(1, H, FEW_QUERIES + 1, D).bfloat16()
    mask = causal_mask(FEW_QUERIES + 1)
    assert torch.equal(
        attention(q_bf16, k, v, mask, False, 0.0), F.scaled_dot_product_attention(q_bf16, k, v, attn_mask=mask)
    )


def test_bf16_cached_decoding_agrees_with_a_bf16_full_forward(tiny_model_dir, monkeypatch):
    """The same bf16 model, once through SDPA (a causal forward over the whole sequence) and once a token and a
    9-token draft at a time through the cache (few_query_attention, here from the first position on): the
    logits agree to bf16 precision."""
    from codegen_lsp.inference.checkpoint.loading import load_folder
    from codegen_lsp.inference.model import kernels

    monkeypatch.setattr(kernels, "MIN_POSITIONS_PER_QUERY", 1)
    calls = []
    monkeypatch.setattr(kernels, "few_query_attention", lambda *args: calls.append(1) or few_query_attention(*args))
    loaded = load_folder(tiny_model_dir, "cpu", "bfloat16")
    model, config = loaded.model, loaded.config
    ids = torch.randint(0, config.vocab_size, (1, 48), generator=torch.Generator().manual_seed(3))
    cache = KVCache(config, config.n_positions, torch.bfloat16, "cpu")
    with torch.inference_mode():
        full = model(ids).float()  # (1, 48, V)
        pieces = [model(ids[:, :30], torch.arange(30), cache)]
        pieces += [model(ids[:, t : t + 1], torch.tensor([t]), cache) for t in range(30, 39)]
        pieces.append(model(ids[:, 39:], torch.arange(39, 48), cache))
    cached = torch.cat(pieces, dim=1).float()
    assert len(calls) == 10 * config.n_layer  # nine single steps and the draft, in every layer
    scale = full.abs().max()
    assert (cached - full).abs().max() <= 0.05 * scale
    assert (cached.argmax(-1) == full.argmax(-1)).float().mean() >= 0.9


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 2e-2), (torch.float32, 1e-5)])
def test_a_packed_product_of_fewer_rows_than_onednn_likes_gives_each_row_its_own_result(dtype, tolerance):
    """1 to ONEDNN_MIN_ROWS - 1 rows go through oneDNN padded with zero rows; what comes back is those rows'
    products, with and without a bias, in the input's shape."""
    from codegen_lsp.inference.model.kernels import ONEDNN_MIN_ROWS, linear, onednn_packing_available

    if not onednn_packing_available():
        pytest.skip("this torch has no oneDNN")
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(96, 64, generator=generator)  # (N, K)
    bias = torch.randn(96, generator=generator)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype), 16)
    for rows in range(1, ONEDNN_MIN_ROWS + 2):
        x = torch.randn(1, rows, 64, generator=generator)  # (B, R, K)
        for b in (None, bias):
            ours = linear(x.to(dtype), packed, None if b is None else b.to(dtype))
            expected = F.linear(x.to(dtype).float(), weight.to(dtype).float(), b)
            assert ours.shape == (1, rows, 96) and ours.dtype == dtype
            assert (ours.float() - expected).abs().max() <= tolerance * expected.abs().max()
