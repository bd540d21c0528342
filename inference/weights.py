"""Reading checkpoint tensors: model.safetensors, sharded safetensors with an index, or pytorch_model.bin.

Safetensors files are memory-mapped and read one tensor at a time. A pytorch_model.bin is opened only with
`torch.load(weights_only=True)` (no arbitrary pickles) and converted once into a safetensors file in our cache,
so later loads are mapped like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from inference.errors import ModelLoadError
from inference.layout import is_ignored_key
from inference.protocol import ErrorKind

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def cache_dir() -> Path:
    """Our own cache (converted weights): $CODEGEN_LSP_CACHE, else $XDG_CACHE_HOME/codegen-lsp."""
    if os.environ.get("CODEGEN_LSP_CACHE"):
        return Path(os.environ["CODEGEN_LSP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codegen-lsp"


class WeightSource:
    """Lazy access to the tensors of one checkpoint, spread over one or more safetensors files."""

    def __init__(self, files: dict[str, Path], description: str) -> None:
        self._file_of = files  # key -> safetensors file
        self.description = description
        self._stack = ExitStack()
        self._handles: dict[Path, object] = {}

    def keys(self) -> set[str]:
        return set(self._file_of)

    def get(self, key: str) -> torch.Tensor:
        path = self._file_of[key]
        try:
            if path not in self._handles:
                self._handles[path] = self._stack.enter_context(safe_open(str(path), framework="pt"))
            return self._handles[path].get_tensor(key)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: cannot read tensor {key} ({exc})") from None

    def close(self) -> None:
        self._stack.close()


def safetensors_keys(path: Path) -> list[str]:
    if not path.exists():
        raise ModelLoadError(f"{path} is missing", ErrorKind.MODEL_NOT_FOUND)
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a valid safetensors file (corrupt or truncated: {exc})") from None


def read_index(path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: not a valid index file ({type(exc).__name__}: {exc})") from None
    if not isinstance(weight_map, dict):
        raise ModelLoadError(f"{path}: weight_map must be an object")
    return weight_map


def sharded_files(folder: Path, index_name: str) -> dict[str, Path]:
    return {key: folder / file for key, file in read_index(folder / index_name).items()}


def load_pickle(path: Path) -> dict[str, torch.Tensor]:
    """A pytorch_model.bin, through weights_only unpickling only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path}: refused: it holds objects other than tensors, and only weights_only loading is allowed "
            f"({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: expected a dict of tensors")
    return state


def converted_path(bin_files: list[Path]) -> Path:
    """Where the safetensors conversion of these .bin files lives: keyed by their paths, sizes and mtimes."""
    digest = hashlib.sha256()
    for path in bin_files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_dir() / "converted" / digest.hexdigest()[:24] / SAFETENSORS


def convert_pickles(bin_files: list[Path], target: Path) -> None:
    state: dict[str, torch.Tensor] = {}
    for path in bin_files:
        for key, tensor in load_pickle(path).items():
            if not is_ignored_key(key):
                state[key] = tensor
    # Tied or shared tensors cannot be saved twice into one safetensors file: give each its own storage.
    seen: set[tuple[int, int]] = set()
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        state[key] = tensor.clone().contiguous() if ident in seen or not tensor.is_contiguous() else tensor
        seen.add(ident)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        save_file(state, str(tmp_path), metadata={"format": "pt", "converted_from": ",".join(map(str, bin_files))})
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def open_weights(folder: Path) -> Iterator[WeightSource]:
    """The checkpoint in `folder`, preferring safetensors. Raises ModelLoadError naming the file at fault."""
    files: dict[str, Path]
    if (folder / SAFETENSORS_INDEX).exists():
        files = sharded_files(folder, SAFETENSORS_INDEX)
        for path in sorted(set(files.values())):
            present = set(safetensors_keys(path))
            absent = [k for k, p in files.items() if p == path and k not in present]
            if absent:
                raise ModelLoadError(f"{path}: the index lists {absent[0]} in this file, but it is not there")
        description = str(folder / SAFETENSORS_INDEX)
    elif (folder / SAFETENSORS).exists():
        path = folder / SAFETENSORS
        files = {key: path for key in safetensors_keys(path)}
        description = str(path)
    elif (folder / PICKLE_INDEX).exists() or (folder / PICKLE).exists():
        if (folder / PICKLE_INDEX).exists():
            bin_files = sorted({p for p in sharded_files(folder, PICKLE_INDEX).values()})
        else:
            bin_files = [folder / PICKLE]
        for path in bin_files:
            if not path.exists():
                raise ModelLoadError(f"{path} is missing", ErrorKind.MODEL_NOT_FOUND)
        target = converted_path(bin_files)
        if not target.exists():
            convert_pickles(bin_files, target)
        files = {key: target for key in safetensors_keys(target)}
        description = str(bin_files[0])
    else:
        raise ModelLoadError(
            f"{folder}: no weights found (expected {SAFETENSORS}, {SAFETENSORS_INDEX} or {PICKLE})",
            ErrorKind.MODEL_NOT_FOUND,
        )
    source = WeightSource({k: p for k, p in files.items() if not is_ignored_key(k)}, description)
    try:
        yield source
    finally:
        source.close()
