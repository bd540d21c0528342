"""The converted-weights cache (a pytorch_model.bin converted once to safetensors) is verified, not trusted: a
truncated, garbled or same-size-but-wrong conversion is converted again, and a cache directory that cannot be
written (not a folder, full) leaves the weights loaded from the .bin in memory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.checkpoint.weights import (
    CHECKSUMS,
    MemorySource,
    WeightSource,
    converted_path,
    open_weights,
    read_safetensors_header,
)
from tests.checkpoints import write_checkpoint


@pytest.fixture
def bin_dir(hf_tiny, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CODEGEN_LSP_CACHE", str(tmp_path / "cache"))
    return write_checkpoint(tmp_path / "bin", hf_tiny, "bin")


def original(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)


def assert_weights_are_the_originals(folder: Path) -> None:
    source, expected = open_weights(folder), original(folder)
    for key in source.keys():
        assert torch.equal(source.get(key), expected[key]), key


def converted(folder: Path) -> Path:
    load_folder(folder, "cpu", "float32")
    target = converted_path([folder / "pytorch_model.bin"])
    assert target.is_file() and (target.parent / CHECKSUMS).is_file()
    return target


def test_a_truncated_conversion_is_converted_again(bin_dir):
    target = converted(bin_dir)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    load_folder(bin_dir, "cpu", "float32")  # used to fail every load, forever
    assert_weights_are_the_originals(bin_dir)


def test_a_garbled_conversion_of_the_same_size_is_converted_again(bin_dir):
    target = converted(bin_dir)
    target.write_bytes(os.urandom(target.stat().st_size))
    assert_weights_are_the_originals(bin_dir)


def test_nan_weights_behind_an_intact_header_are_found_and_converted_again(bin_dir):
    """Same size, same header, every tensor NaN: only the checksums tell."""
    target = converted(bin_dir)
    header = read_safetensors_header(target)
    with open(target, "r+b") as f:
        for entry in header.values():
            f.seek(entry.start)
            f.write(torch.full(entry.shape, float("nan"), dtype=entry.dtype).reshape(-1).view(torch.uint8).numpy())
    source = open_weights(bin_dir)
    assert isinstance(source, WeightSource)
    expected = original(bin_dir)
    for key in sorted(source.keys()):
        tensor = source.get(key)
        assert not tensor.is_floating_point() or not tensor.isnan().any(), key
        assert torch.equal(tensor, expected[key])
    assert_weights_are_the_originals(bin_dir)  # and the cache now holds the good conversion


def test_a_conversion_without_its_checksums_is_converted_again(bin_dir):
    """A conversion killed between writing the weights and their checksums, or one from before checksums."""
    target = converted(bin_dir)
    (target.parent / CHECKSUMS).unlink()
    stamp = target.stat().st_mtime_ns
    assert_weights_are_the_originals(bin_dir)
    assert target.stat().st_mtime_ns != stamp and (target.parent / CHECKSUMS).is_file()


def test_a_cache_that_cannot_be_written_loads_the_bin_in_memory(bin_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CODEGEN_LSP_CACHE", str(blocker / "cache"))
    assert isinstance(open_weights(bin_dir), MemorySource)
    load_folder(bin_dir, "cpu", "float32")  # used to fail: the model could not be loaded at all
    assert_weights_are_the_originals(bin_dir)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a small tmpfs needs root")
def test_a_full_cache_disk_loads_the_bin_in_memory_and_leaves_nothing_behind(bin_dir, tmp_path, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode != 0:
        pytest.skip("this container cannot mount a tmpfs")
    try:
        monkeypatch.setenv("CODEGEN_LSP_CACHE", str(full))
        assert isinstance(open_weights(bin_dir), MemorySource)
        load_folder(bin_dir, "cpu", "float32")
        assert_weights_are_the_originals(bin_dir)
        assert not [p for p in full.rglob("*") if p.is_file()]  # no half-written .tmp left on the full disk
    finally:
        subprocess.run(["umount", str(full)])
