"""Device and dtype selection; the half-precision paths the GPU uses also run (slowly) on the CPU."""

from __future__ import annotations

import pytest
import torch

from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.model import device as device_module
from codegen_lsp.inference.model.device import cpu_has_fast_bf16, resolve_device, resolve_dtype


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_is_cuda_when_a_gpu_is_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_is_named():
    with pytest.raises(ModelLoadError, match="tpu"):
        resolve_device("tpu")


def test_auto_dtype_is_float16_on_cuda():
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_auto_dtype_on_the_cpu_follows_native_bf16_support(monkeypatch, fast_bf16):
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: fast_bf16)
    expected = torch.bfloat16 if fast_bf16 else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected


def test_cpu_bf16_probe_answers():
    assert isinstance(cpu_has_fast_bf16(), bool)


@pytest.mark.parametrize(
    ("name", "dtype"), [("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)]
)
def test_explicit_dtypes(name, dtype):
    assert resolve_dtype(name, torch.device("cpu")) == dtype


def test_unknown_dtype_is_named():
    with pytest.raises(ModelLoadError, match="int2"):
        resolve_dtype("int2", torch.device("cpu"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_and_cache_give_logits_close_to_float32(tiny_model_dir, tiny_loaded, dtype):
    """The CUDA path's casting (float16 weights and KV cache), exercised on the CPU."""
    loaded = load_folder(tiny_model_dir, "cpu", dtype)
    assert all(p.dtype == getattr(torch, dtype) for p in loaded.model.parameters())
    assert loaded.model.rotary_cos.dtype == torch.float32  # rotary stays in fp32, like transformers
    ids = torch.tensor([loaded.tokenizer.encode("def add(a, b):\n    return a + b\n")])
    with torch.no_grad():
        half = loaded.model(ids).float()
        full = tiny_loaded.model(ids)
    assert torch.isfinite(half).all()
    scale = full.abs().max()
    assert (half - full).abs().max() / scale < 0.05


@pytest.mark.parametrize("dtype, tolerance", [("bfloat16", 0.02), ("float32", 1e-5)])
def test_weights_packed_for_onednn_compute_what_plain_weights_do(tiny_model_dir, monkeypatch, dtype, tolerance):
    from codegen_lsp.inference.checkpoint import loading
    from codegen_lsp.inference.model.kernels import onednn_packing_available

    if not onednn_packing_available():
        pytest.skip("this torch has no oneDNN")
    packed = load_folder(tiny_model_dir, "cpu", dtype)
    assert sum(p.layout == torch._mkldnn for p in packed.model.parameters()) == 2 * packed.config.n_layer + 1
    monkeypatch.setattr(loading, "onednn_packing_available", lambda: False)
    plain = load_folder(tiny_model_dir, "cpu", dtype)
    assert all(p.layout == torch.strided for p in plain.model.parameters())
    ids = torch.tensor([plain.tokenizer.encode("def add(a, b):\n    return a + b\n" * 3)])
    with torch.no_grad():
        for rows in (ids, ids[:, :1], ids[:, :3]):  # a prefill, one row (decode), a few rows (verification)
            a, b = packed.model(rows).float(), plain.model(rows).float()
            assert (a - b).abs().max() / b.abs().max() < tolerance


def test_int8_on_cuda_is_refused_with_the_way_out():
    with pytest.raises(ModelLoadError, match="CPU only.*float16") as info:
        resolve_dtype("int8", torch.device("cuda"))
    assert info.value.kind.name == "BAD_CONFIG"


def test_int4_on_cuda_runs_in_bfloat16():
    assert resolve_dtype("int4", torch.device("cuda")) == torch.bfloat16
