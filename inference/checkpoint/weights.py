"""Reading checkpoint tensors: model.safetensors, sharded safetensors with an index, or pytorch_model.bin.

Safetensors files are read one tensor at a time straight into the buffer that becomes (or is converted into) the
model's tensor, so the weights exist once in memory: no state dict beside the model, and no mapping of the whole
file counted against the process while it loads. A pytorch_model.bin is opened only with
`torch.load(weights_only=True)` (no arbitrary pickles) and converted once into a safetensors file in our cache,
so later loads read it like any other.

The cache is not trusted: the conversion records each tensor's CRC-32 and the file's size beside it
(`checksums.json`, written last: a conversion cut short has none), and a load checks the header, the size and
each tensor's checksum as it reads it. A missing, truncated or garbled conversion (same-size NaNs included) is
converted again; a cache directory that cannot be written (read-only, full) leaves the weights loaded from the
.bin in memory, as the load before the cache existed did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from codegen_lsp.inference.checkpoint.hub import model_file
from codegen_lsp.inference.checkpoint.layout import is_ignored_key
from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.protocol import ErrorKind

log = logging.getLogger("codegen_lsp.weights")

SAFETENSORS = "model.safetensors"
CHECKSUMS = "checksums.json"  # beside a converted model.safetensors: its size and each tensor's CRC-32
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def cache_dir() -> Path:
    """Our own cache (converted weights): $CODEGEN_LSP_CACHE, else $XDG_CACHE_HOME/codegen-lsp."""
    if os.environ.get("CODEGEN_LSP_CACHE"):
        return Path(os.environ["CODEGEN_LSP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codegen-lsp"


# The safetensors format: 8 bytes little-endian header length, a JSON header, then the tensors' bytes.
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorEntry:
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    end: int


def read_safetensors_header(path: Path) -> dict[str, TensorEntry]:
    """The tensors a safetensors file holds, checked against the file's size (a truncated file fails here)."""
    if not path.exists():
        raise ModelLoadError(f"{path} is missing", ErrorKind.MODEL_NOT_FOUND)

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"{path}: not a valid safetensors file (corrupt or truncated: {why})")

    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise corrupt("shorter than its 8-byte header length")
        header_len = int.from_bytes(prefix, "little")
        if not 2 <= header_len <= min(MAX_HEADER_BYTES, size - 8):
            raise corrupt(f"header length {header_len} does not fit a file of {size} bytes")
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError) as exc:
            raise corrupt(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")
    base = 8 + header_len
    entries = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise corrupt(f"entry {key!r} is malformed ({type(exc).__name__}: {exc})") from None
        expected = math.prod(shape) * dtype.itemsize
        if not 0 <= begin <= end or end - begin != expected:
            raise corrupt(f"tensor {key} claims {end - begin} bytes for shape {shape}")
        if base + end > size:
            raise corrupt(f"tensor {key} ends at byte {base + end} of a {size}-byte file")
        entries[key] = TensorEntry(dtype, shape, base + begin, base + end)
    return entries


def read_tensor(path: Path, entry: TensorEntry) -> torch.Tensor:
    """One tensor, read into a buffer the tensor then owns."""
    return as_tensor(read_bytes(path, entry), entry)


def as_tensor(buffer: bytearray, entry: TensorEntry) -> torch.Tensor:
    if not buffer:
        return torch.empty(entry.shape, dtype=entry.dtype)
    return torch.frombuffer(buffer, dtype=entry.dtype).reshape(entry.shape)


def read_bytes(path: Path, entry: TensorEntry) -> bytearray:
    """One tensor's bytes."""
    buffer = bytearray(entry.end - entry.start)
    with open(path, "rb", buffering=0) as f:
        f.seek(entry.start)
        view, done = memoryview(buffer), 0
        while done < len(buffer):
            n = f.readinto(view[done:])
            if not n:
                raise ModelLoadError(f"{path}: ended early while reading a tensor (truncated file)")
            done += n
    return buffer


class WeightSource:
    """Lazy access to the tensors of one checkpoint, spread over one or more safetensors files.

    With `checksums` (a converted cache file), each tensor read is checked against the CRC-32 recorded at
    conversion; on a mismatch `rebuild` (once) converts again and gives the entries and checksums to use."""

    def __init__(
        self,
        entries: dict[str, tuple[Path, TensorEntry]],
        description: str,
        checksums: dict[str, int] | None = None,
        rebuild: Callable[[], tuple[dict[str, tuple[Path, TensorEntry]], dict[str, int]]] | None = None,
    ) -> None:
        self._entries = entries  # key -> (safetensors file, where the tensor is)
        self.description = description
        self._checksums = checksums
        self._rebuild = rebuild

    def keys(self) -> set[str]:
        return set(self._entries)

    def get(self, key: str) -> torch.Tensor:
        path, entry = self._entries[key]
        try:
            buffer = read_bytes(path, entry)
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read tensor {key} ({exc})") from None
        if self._checksums is not None and zlib.crc32(buffer) != self._checksums.get(key):
            if self._rebuild is None:
                raise ModelLoadError(f"{path}: tensor {key} does not match the checksum recorded at conversion")
            log.warning("%s: tensor %s does not match its checksum; converting again", path, key)
            rebuild, self._rebuild = self._rebuild, None
            try:
                self._entries, self._checksums = rebuild()
            except (OSError, _StaleCache) as exc:
                raise ModelLoadError(f"{path} is corrupt and cannot be converted again ({exc})") from None
            return self.get(key)
        return as_tensor(buffer, entry)


class MemorySource:
    """The tensors of a checkpoint already in memory (a .bin, when its conversion cannot be cached)."""

    def __init__(self, tensors: dict[str, torch.Tensor], description: str) -> None:
        self._tensors = tensors
        self.description = description

    def keys(self) -> set[str]:
        return set(self._tensors)

    def get(self, key: str) -> torch.Tensor:
        return self._tensors[key]


def safetensors_keys(path: Path) -> list[str]:
    return list(read_safetensors_header(path))


def read_index(path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: not a valid index file ({type(exc).__name__}: {exc})") from None
    if not isinstance(weight_map, dict):
        raise ModelLoadError(f"{path}: weight_map must be an object")
    return weight_map


def sharded_files(folder: Path, index_name: str) -> dict[str, Path]:
    """The file each key is in, as the index says: files inside the model folder only (hub.model_file)."""
    files = {}
    for key, file in read_index(model_file(folder, index_name)).items():
        if not isinstance(file, str):
            raise ModelLoadError(f"{folder / index_name}: weight_map[{key!r}] must be a file name, not {file!r}")
        files[key] = model_file(folder, file, named_by=index_name)
    return files


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


def pickled_tensors(bin_files: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in bin_files:
        for key, tensor in load_pickle(path).items():
            if not is_ignored_key(key):
                state[key] = tensor
    return state


def convert_pickles(bin_files: list[Path], target: Path) -> None:
    """Write the .bin files' tensors as `target` (safetensors), then its checksums (last: their presence says
    the conversion is whole). Raises OSError when the cache cannot be written; nothing half-written stays."""
    state = pickled_tensors(bin_files)
    # Tied or shared tensors cannot be saved twice into one safetensors file: give each its own storage.
    seen: set[tuple[int, int]] = set()
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        state[key] = tensor.clone().contiguous() if ident in seen or not tensor.is_contiguous() else tensor
        seen.add(ident)
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / CHECKSUMS).unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        try:
            save_file(state, str(tmp_path), metadata={"format": "pt", "converted_from": ",".join(map(str, bin_files))})
        except SafetensorError as exc:  # its I/O errors (a full disk) are not OSErrors
            raise OSError(str(exc)) from None
        del state
        entries = read_safetensors_header(tmp_path)
        record = {
            "size": tmp_path.stat().st_size,
            "crc32": {key: zlib.crc32(read_bytes(tmp_path, entry)) for key, entry in entries.items()},
        }
        os.replace(tmp_path, target)
        _write_atomically(target.parent / CHECKSUMS, json.dumps(record).encode())
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        tmp.write(data)
    try:
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


class _StaleCache(Exception):
    """The converted file is missing, or not what its conversion wrote."""


def cached_conversion(target: Path) -> tuple[dict[str, tuple[Path, TensorEntry]], dict[str, int]]:
    """The entries of a converted file and the checksums recorded for them, after checking what can be checked
    without reading the tensors: the record, the size, the header, the keys. Raises _StaleCache."""
    try:
        record = json.loads((target.parent / CHECKSUMS).read_text(encoding="utf-8"))
        size, checksums = record["size"], record["crc32"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _StaleCache(f"no checksums recorded ({type(exc).__name__})") from None
    try:
        actual = target.stat().st_size
        header = read_safetensors_header(target)
    except (OSError, ModelLoadError) as exc:
        raise _StaleCache(str(exc)) from None
    if actual != size:
        raise _StaleCache(f"{actual} bytes where the conversion wrote {size}")
    if not isinstance(checksums, dict) or set(checksums) != set(header):
        raise _StaleCache("its tensors are not the ones converted")
    return {key: (target, entry) for key, entry in header.items()}, checksums


def converted_source(bin_files: list[Path]) -> WeightSource | MemorySource:
    """The .bin files' tensors through our cache: checked, converted again when stale, or read into memory when
    the cache cannot be written."""
    target = converted_path(bin_files)
    description = str(bin_files[0])

    def convert() -> tuple[dict[str, tuple[Path, TensorEntry]], dict[str, int]]:
        convert_pickles(bin_files, target)
        return cached_conversion(target)

    try:
        entries, checksums = cached_conversion(target)
    except _StaleCache as why:
        if target.exists():
            log.warning("converted weights %s: %s; converting again", target, why)
        try:
            entries, checksums = convert()
        except (OSError, _StaleCache) as exc:
            log.warning(
                "the converted-weights cache %s cannot be written (%s): %s is loaded in memory, converted again at "
                "each start",
                target.parent,
                exc,
                description,
            )
            return MemorySource(pickled_tensors(bin_files), description)
        return WeightSource(entries, description, checksums)
    return WeightSource(entries, description, checksums, rebuild=convert)


def entries_of(files: dict[str, Path]) -> dict[str, tuple[Path, TensorEntry]]:
    """Where each key's tensor is, from the headers of the files the keys are said to be in."""
    headers = {path: read_safetensors_header(path) for path in sorted(set(files.values()))}
    entries = {}
    for key, path in files.items():
        if key not in headers[path]:
            raise ModelLoadError(f"{path}: the index lists {key} in this file, but it is not there")
        entries[key] = (path, headers[path][key])
    return entries


def open_weights(folder: Path) -> WeightSource | MemorySource:
    """The checkpoint in `folder`, preferring safetensors. Raises ModelLoadError naming the file at fault."""
    files: dict[str, Path]
    if (folder / SAFETENSORS_INDEX).exists():
        files = sharded_files(folder, SAFETENSORS_INDEX)
        description = str(folder / SAFETENSORS_INDEX)
    elif (folder / SAFETENSORS).exists():
        path = model_file(folder, SAFETENSORS)
        files = {key: path for key in safetensors_keys(path)}
        description = str(path)
    elif (folder / PICKLE_INDEX).exists() or (folder / PICKLE).exists():
        if (folder / PICKLE_INDEX).exists():
            bin_files = sorted({p for p in sharded_files(folder, PICKLE_INDEX).values()})
        else:
            bin_files = [model_file(folder, PICKLE)]
        for path in bin_files:
            if not path.exists():
                raise ModelLoadError(f"{path} is missing", ErrorKind.MODEL_NOT_FOUND)
        return converted_source(bin_files)  # its keys are already the ones kept
    else:
        raise ModelLoadError(
            f"{folder}: no weights found (expected {SAFETENSORS}, {SAFETENSORS_INDEX} or {PICKLE})",
            ErrorKind.MODEL_NOT_FOUND,
        )
    return WeightSource(entries_of({k: p for k, p in files.items() if not is_ignored_key(k)}), description)
