"""Loading: every bad input gives one clear error naming the file or key; the Hub path honours HF_HUB_OFFLINE."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from codegen_lsp.inference.checkpoint.hub import resolve_model_folder
from codegen_lsp.inference.checkpoint.loading import load, load_folder
from codegen_lsp.inference.checkpoint.weights import converted_path
from codegen_lsp.inference.errors import ConfigError, ModelLoadError
from codegen_lsp.inference.protocol import ErrorKind, ModelSpec
from tests.checkpoints import write_checkpoint


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny checkpoint that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def load_error(folder: Path) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        load_folder(folder, "cpu", "float32")
    return info.value


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load(ModelSpec(model=str(tmp_path / "nowhere"), device="cpu", dtype="float32"))
    assert info.value.kind == ErrorKind.MODEL_NOT_FOUND


def test_missing_config_names_the_file(model_dir):
    (model_dir / "config.json").unlink()
    assert "config.json" in load_error(model_dir).message


def test_config_that_is_not_json_names_the_file(model_dir):
    (model_dir / "config.json").write_text("{ not json")
    error = load_error(model_dir)
    assert isinstance(error, ConfigError) and "config.json" in error.message and "JSON" in error.message


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"activation_function": "swiglu"}, "activation_function"),
        ({"rotary_dim": None}, "rotary_dim"),
        ({"rotary_dim": 3}, "rotary_dim"),
        ({"n_head": 6, "n_embd": 60}, "n_head"),
        ({"n_embd": 65}, "n_embd"),
        ({"model_type": "gptj"}, "model_type"),
        ({"vocab_size": "many"}, "vocab_size"),
        ({"eos_token_id": 10**9}, "token id"),
    ],
)
def test_unsupported_config_values_are_named(model_dir, changes, named):
    edit_config(model_dir, **changes)
    error = load_error(model_dir)
    assert error.kind == ErrorKind.BAD_CONFIG
    assert named in error.message


def test_no_weights_at_all(model_dir):
    (model_dir / "model.safetensors").unlink()
    error = load_error(model_dir)
    assert error.kind == ErrorKind.MODEL_NOT_FOUND and "no weights" in error.message


def test_truncated_safetensors_names_the_file(model_dir):
    path = model_dir / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = load_error(model_dir)
    assert "model.safetensors" in error.message and error.kind == ErrorKind.CORRUPT_FILE


def test_garbage_safetensors_names_the_file(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"\x00\x01garbage" * 100)
    assert "model.safetensors" in load_error(model_dir).message


def test_missing_key_is_named(model_dir):
    path = model_dir / "model.safetensors"
    state = load_file(path)
    del state["transformer.h.1.mlp.fc_in.bias"]
    save_file(state, path)
    assert "transformer.h.1.mlp.fc_in.bias" in load_error(model_dir).message


def test_unexpected_key_is_named(model_dir):
    path = model_dir / "model.safetensors"
    state = load_file(path)
    state["transformer.h.7.attn.qkv_proj.weight"] = torch.zeros(3)
    save_file(state, path)
    assert "transformer.h.7.attn.qkv_proj.weight" in load_error(model_dir).message


def test_shape_mismatch_is_named_with_both_shapes(model_dir):
    path = model_dir / "model.safetensors"
    state = load_file(path)
    state["transformer.h.0.mlp.fc_out.bias"] = torch.zeros(7)
    save_file(state, path)
    message = load_error(model_dir).message
    assert "transformer.h.0.mlp.fc_out.bias" in message and "(64,)" in message and "(7,)" in message


def test_sharded_index_naming_a_missing_shard(hf_tiny, tmp_path):
    folder = write_checkpoint(tmp_path / "sharded", hf_tiny, "sharded")
    (folder / "model-00002-of-00002.safetensors").unlink()
    assert "model-00002-of-00002.safetensors" in load_error(folder).message


def test_missing_tokenizer_is_named(model_dir):
    for name in ("vocab.json", "merges.txt"):
        (model_dir / name).unlink()
    error = load_error(model_dir)
    assert str(model_dir) in error.message and "vocab.json" in error.message


class NotATensor:
    """A pickled object of an arbitrary class: what a malicious pytorch_model.bin would carry."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_arbitrary_objects_is_refused(model_dir):
    (model_dir / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": NotATensor()}, model_dir / "pytorch_model.bin", pickle_module=pickle)
    error = load_error(model_dir)
    assert "pytorch_model.bin" in error.message and "weights_only" in error.message


def test_truncated_pytorch_bin_is_named(hf_tiny, tmp_path):
    folder = write_checkpoint(tmp_path / "bin", hf_tiny, "bin")
    path = folder / "pytorch_model.bin"
    path.write_bytes(path.read_bytes()[:1000])
    assert "pytorch_model.bin" in load_error(folder).message


def test_pytorch_bin_is_converted_once_into_our_cache(hf_tiny, tmp_path):
    folder = write_checkpoint(tmp_path / "bin", hf_tiny, "bin")
    load_folder(folder, "cpu", "float32")
    converted = converted_path([folder / "pytorch_model.bin"])
    assert converted.exists()
    assert not any(k.endswith("causal_mask") for k in load_file(converted))  # old buffers dropped
    stamp = converted.stat().st_mtime_ns
    load_folder(folder, "cpu", "float32")
    assert converted.stat().st_mtime_ns == stamp  # the second load maps the converted file
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (tmp_path / "bin").iterdir())


def test_hub_id_not_cached_while_offline_is_a_clear_offline_error():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(ModelLoadError) as info:
        resolve_model_folder("Salesforce/codegen-350M-mono")
    assert info.value.kind == ErrorKind.OFFLINE
    assert "Salesforce/codegen-350M-mono" in info.value.message and "HF_HUB_OFFLINE" in info.value.message


def seed_hub_cache(source: Path, repo_id: str, commit: str = "0" * 40) -> Path:
    """Place a checkpoint in the Hugging Face cache exactly as huggingface_hub lays it out."""
    cache = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo_id.replace('/', '--')}"
    snapshot = cache / "snapshots" / commit
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    (cache / "refs").mkdir(parents=True, exist_ok=True)
    (cache / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_id_in_the_cache_loads_offline(tiny_model_dir):
    snapshot = seed_hub_cache(tiny_model_dir, "test-org/codegen-tiny")
    assert resolve_model_folder("test-org/codegen-tiny") == snapshot
    loaded = load(ModelSpec(model="test-org/codegen-tiny", device="cpu", dtype="float32"))
    assert loaded.folder == snapshot and loaded.warning is None


def test_hub_cache_with_only_pytorch_bin_loads_offline(hf_tiny, tmp_path):
    folder = write_checkpoint(tmp_path / "bin", hf_tiny, "bin")
    seed_hub_cache(folder, "test-org/codegen-tiny-bin")
    loaded = load(ModelSpec(model="test-org/codegen-tiny-bin", device="cpu", dtype="float32"))
    assert loaded.config.n_layer == hf_tiny.config.n_layer


def test_unknown_revision_offline_is_reported(tiny_model_dir):
    seed_hub_cache(tiny_model_dir, "test-org/codegen-rev")
    with pytest.raises(ModelLoadError) as info:
        resolve_model_folder("test-org/codegen-rev", revision="v9")
    assert "v9" in info.value.message


def test_default_model_falls_back_to_the_bundled_model_when_offline():
    from codegen_lsp.inference.checkpoint.hub import BUNDLED_MODEL_DIR

    if not (BUNDLED_MODEL_DIR / "config.json").exists():
        pytest.skip("the bundled model is not built in this checkout")
    loaded = load(ModelSpec(device="cpu", dtype="float32"))
    assert loaded.folder == BUNDLED_MODEL_DIR
    assert "bundled" in loaded.warning and "Salesforce/codegen-350M-mono" in loaded.warning


def test_no_fallback_for_a_local_folder(tmp_path):
    with pytest.raises(ModelLoadError):
        load(ModelSpec(model=str(tmp_path / "missing"), device="cpu", dtype="float32"))


def test_a_header_that_lies_about_a_tensors_size_is_named(model_dir):
    import struct

    path = model_dir / "model.safetensors"
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    header["lm_head.bias"]["shape"] = [header["lm_head.bias"]["shape"][0] * 2]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + header_len :])
    message = load_error(model_dir).message
    assert "model.safetensors" in message and "lm_head.bias" in message


def test_weights_are_read_into_the_model_not_beside_it(tiny_model_dir, tiny_loaded):
    """Each tensor comes from a read of its own bytes (no mapping of the file stays behind the model)."""
    from codegen_lsp.inference.checkpoint.weights import open_weights

    source = open_weights(tiny_model_dir)
    tensor = source.get("transformer.h.0.mlp.fc_in.weight")
    assert tensor.is_contiguous() and tensor.dtype == torch.float32
    assert torch.equal(tensor, load_file(tiny_model_dir / "model.safetensors")["transformer.h.0.mlp.fc_in.weight"])


@pytest.mark.parametrize("fmt", ["safetensors", "sharded", "bin"])
@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_quantized_loading_drops_each_float_matrix_before_the_next_layer_arrives(hf_tiny, tmp_path, fmt, dtype):
    """Weights are quantized as they are read: when a layer's first matrix arrives, no float projection matrix of
    an earlier layer is alive any more, and none is left after loading (peak memory: the quantized model plus
    one layer's float tensors, whatever the file format)."""
    import weakref

    from codegen_lsp.inference.checkpoint import loading as loading_module

    folder = write_checkpoint(tmp_path / fmt, hf_tiny, fmt)
    handed_out: dict[str, tuple[int, weakref.ref]] = {}
    stream = loading_module.converted_tensors

    def watched(*args, **kwargs):
        for key, tensor in stream(*args, **kwargs):
            if key.startswith("h.") and key.endswith("proj.weight"):
                layer = int(key.split(".")[1])
                stale = [k for k, (at, ref) in handed_out.items() if at < layer and ref() is not None]
                assert stale == [], f"{stale} still alive when {key} arrives"
                handed_out[key] = (layer, weakref.ref(tensor))
            yield key, tensor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loading_module, "converted_tensors", watched)
        loaded = load_folder(folder, "cpu", dtype)
    assert len(handed_out) == 2 * loaded.config.n_layer
    assert all(ref() is None for _, ref in handed_out.values())


def test_a_float_load_keeps_each_matrix_it_reads(tiny_model_dir):
    """The same stream fills a float model: every parameter set, nothing left on the meta device."""
    loaded = load_folder(tiny_model_dir, "cpu", "float32")
    assert not any(p.is_meta for p in loaded.model.parameters())
    assert loaded.model.lm_head.bias.dtype == torch.float32


def test_a_fused_matrix_read_by_blocks_is_the_matrix_built_whole(tiny_model_dir):
    """Blocks of any size, straddling the [q | k | v] rows and fc_in's, concatenate to the fused matrix."""
    from codegen_lsp.inference.checkpoint.config import CodeGenConfig
    from codegen_lsp.inference.checkpoint.layout import FusedWeight, converted_tensors
    from codegen_lsp.inference.checkpoint.weights import open_weights

    config = CodeGenConfig.from_file(tiny_model_dir / "config.json")
    source = open_weights(tiny_model_dir)
    fused = dict(converted_tensors(source.get, config, torch.bfloat16))
    in_proj, out_proj = fused["h.0.in_proj.weight"], fused["h.0.out_proj.weight"]
    assert isinstance(in_proj, FusedWeight) and in_proj.shape == (3 * config.n_embd + config.inner_dim, config.n_embd)
    for matrix in (in_proj, out_proj):
        whole = matrix.whole()
        assert whole.shape == matrix.shape and whole.dtype == torch.bfloat16
        for size in (1, 7, 128, 10_000):
            blocks = list(matrix.blocks(size))
            assert all(len(b) == size for b in blocks[:-1]) and torch.equal(torch.cat(blocks), whole)


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantizing_while_loading_gives_the_bytes_of_quantizing_the_float_model(tiny_model_dir, monkeypatch, kind):
    """A fused matrix is quantized a block of rows at a time as its checkpoint tensors are read (128 rows here: a
    block straddles the [q | k | v] rows and fc_in's), never built in float: bit for bit what quantizing the
    float model's fused matrices gives."""
    from codegen_lsp.inference.checkpoint.config import CodeGenConfig
    from codegen_lsp.inference.checkpoint.loading import load_weights
    from codegen_lsp.inference.model import int4 as int4_module
    from codegen_lsp.inference.model import quantize as quantize_module
    from codegen_lsp.inference.model.quantize import Int8Linear, WeightFormat, quantize_model

    monkeypatch.setattr(int4_module, "_CHUNK_ROWS", 128)
    monkeypatch.setattr(quantize_module, "_CHUNK_ROWS", 128)
    config = CodeGenConfig.from_file(tiny_model_dir / "config.json")
    assert 3 * config.n_embd % 128 != 0
    cpu, form = torch.device("cpu"), WeightFormat(kind)
    streamed = load_weights(tiny_model_dir, config, cpu, torch.bfloat16, quantized=form)
    built = load_weights(tiny_model_dir, config, cpu, torch.bfloat16)
    quantize_model(built, form, torch.bfloat16)
    pairs = list(zip(streamed.projections(), built.projections(), strict=True))
    assert len(pairs) == 2 * config.n_layer + 1
    for ours, theirs in pairs:
        assert type(ours) is type(theirs) and type(ours) is not torch.nn.Linear
        buffers = dict(theirs.named_buffers())
        assert {n: torch.equal(b, buffers[n]) for n, b in ours.named_buffers()} == dict.fromkeys(buffers, True)
        if isinstance(ours, Int8Linear):
            assert torch.equal(ours.int8_weight(), theirs.int8_weight())
