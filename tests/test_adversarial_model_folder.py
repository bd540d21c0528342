"""Hostile model folders: a model's files are read from inside its folder only (the Hugging Face cache's
snapshot -> blob links still work), only regular files are read, and each refusal names the file at fault."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from codegen_lsp.inference.checkpoint.hub import resolve_model_folder
from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.checkpoint.weights import open_weights
from codegen_lsp.inference.errors import ModelLoadError


@pytest.fixture(scope="module")
def sharded_dir(hf_tiny, tmp_path_factory) -> Path:
    from tests.checkpoints import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("sharded") / "codegen-tiny", hf_tiny, "sharded")


def copy_of(folder: Path, tmp_path: Path, name: str = "model") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target, symlinks=True)
    return target


def point_index_at(folder: Path, where: str) -> None:
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = where
    index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("where", ["/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors", ""])
def test_an_index_cannot_point_outside_the_folder(sharded_dir, tmp_path, where) -> None:
    folder = copy_of(sharded_dir, tmp_path)
    shutil.copy(folder / "model-00001-of-00002.safetensors", tmp_path / "outside.safetensors")
    point_index_at(folder, where)
    with pytest.raises(ModelLoadError) as info:
        open_weights(folder)
    assert "model.safetensors.index.json" in info.value.message and "outside the model folder" in info.value.message


def test_a_symlink_out_of_the_folder_is_refused(sharded_dir, tmp_path) -> None:
    folder = copy_of(sharded_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(folder / "model-00002-of-00002.safetensors", elsewhere)
    os.symlink(elsewhere, folder / "model-00002-of-00002.safetensors")
    with pytest.raises(ModelLoadError) as info:
        open_weights(folder)
    assert "model-00002-of-00002.safetensors" in info.value.message and "outside" in info.value.message


def test_a_config_linked_out_of_the_folder_is_refused(tiny_model_dir, tmp_path) -> None:
    folder = copy_of(tiny_model_dir, tmp_path)
    (folder / "config.json").unlink()
    os.symlink("/etc/passwd", folder / "config.json")
    with pytest.raises(ModelLoadError) as info:
        resolve_model_folder(str(folder))
    assert "config.json" in info.value.message and "outside the model folder" in info.value.message


def test_a_fifo_is_refused_instead_of_read_forever(tiny_model_dir, tmp_path) -> None:
    folder = copy_of(tiny_model_dir, tmp_path)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    with pytest.raises(ModelLoadError) as info:
        resolve_model_folder(str(folder))
    assert "config.json" in info.value.message and "not a regular file" in info.value.message


def test_links_inside_the_folder_and_the_hub_cache_layout_load(sharded_dir, tmp_path) -> None:
    """models--org--name/snapshots/<rev>/file -> ../../blobs/<hash>: how huggingface_hub lays out its cache."""
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted(sharded_dir.iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        shutil.copy(file, blob)
        os.symlink(Path("..", "..", "blobs", blob.name), snapshot / file.name)
    folder = resolve_model_folder(str(snapshot))
    loaded = load_folder(folder, "cpu", "float32")
    assert loaded.config.n_layer == 2
    linked = copy_of(sharded_dir, tmp_path, "linked")  # a link to a file beside it, inside the folder
    (linked / "shard.safetensors").symlink_to("model-00001-of-00002.safetensors")
    point_index_at(linked, "shard.safetensors")
    assert open_weights(linked).keys()
