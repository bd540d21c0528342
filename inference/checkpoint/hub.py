"""Finding a model's folder: the bundled model, a local folder, or a Hub id fetched into the Hugging Face cache.

Only the files the engine needs are fetched. `HF_HUB_OFFLINE=1` is honoured by huggingface_hub itself: a model
already in the cache loads, one that is not fails with ErrorKind.OFFLINE.

A model's files are read from inside its folder only (`model_file`): a name from an index file may not be
absolute or climb out with "..", and a symlink must end inside the folder, or, for a Hugging Face cache
snapshot (`models--org--name/snapshots/<revision>/`), inside that model's cache folder, where `blobs/` is.
Only regular files are read (a FIFO would block the load for good).
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.protocol import DEFAULT_MODEL as DEFAULT_MODEL  # loading.py takes it from here
from codegen_lsp.inference.protocol import ErrorKind

BUNDLED = "bundled"
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "bundled"

CONFIG_AND_TOKENIZER = [
    "config.json",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
SAFETENSORS_FILES = ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
PICKLE_FILES = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]

Progress = Callable[[str, float | None], None]


def model_roots(folder: Path) -> tuple[Path, ...]:
    """Where the files of the model in `folder` may really be (symlinks resolved)."""
    real = folder.resolve()
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        return real, real.parent.parent  # the Hub cache: snapshots/<revision>/file -> ../../blobs/<hash>
    return (real,)


def model_file(folder: Path, name: str, named_by: str | None = None) -> Path:
    """`folder / name`, once it is known to stay inside the model folder; ModelLoadError otherwise. `named_by`:
    the file that gave the name (an index), for the message."""
    source = f"{folder / named_by}: " if named_by else ""
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or "\0" in name:
        raise ModelLoadError(
            f"{source}refused {name!r}: it names a file outside the model folder", ErrorKind.CORRUPT_FILE
        )
    path = folder / name
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ModelLoadError(f"{path}: cannot be resolved ({exc})", ErrorKind.CORRUPT_FILE) from None
    if not any(real.is_relative_to(root) for root in model_roots(folder)):
        raise ModelLoadError(
            f"{source}{path} is a link to {real}, outside the model folder: refused", ErrorKind.CORRUPT_FILE
        )
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return path  # the caller says it is missing, if it needs it
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc})", ErrorKind.CORRUPT_FILE) from None
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"{path} is not a regular file: refused", ErrorKind.CORRUPT_FILE)
    return path


def check_model_folder(folder: Path) -> Path:
    """Every file of the model that the folder holds (config, tokenizer, weights) stays inside it."""
    names = set(CONFIG_AND_TOKENIZER)
    for pattern in SAFETENSORS_FILES + PICKLE_FILES:
        names.update(path.name for path in folder.glob(pattern))
    for name in sorted(names):
        if os.path.lexists(folder / name):
            model_file(folder, name)
    return folder


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.sep in model.replace("/", "", 1) or Path(model).exists()


def has_weights(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in SAFETENSORS_FILES + PICKLE_FILES)


def progress_tqdm(report: Progress) -> type:
    """A tqdm class for huggingface_hub that turns its byte counters into `report(message, fraction)` calls."""
    from tqdm.auto import tqdm

    class ReportingTqdm(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # never the terminal: stdout is the LSP channel
            super().__init__(*args, **kwargs)
            self._last_report = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            now = time.monotonic()
            if self.unit == "B" and self.total and (now - self._last_report > 0.25 or self.n >= self.total):
                self._last_report = now
                report(f"downloading {self.n / 1e6:.0f} / {self.total / 1e6:.0f} MB", min(1.0, self.n / self.total))
            return shown

    return ReportingTqdm


def download(repo_id: str, revision: str | None, report: Progress | None = None, weights: bool = True) -> Path:
    """Fetch config, tokenizer and weights of `repo_id` into the Hugging Face cache; safetensors when the repo
    has them, else pytorch_model.bin (which the loader converts once). `weights=False`: config and tokenizer
    only (a remote backend serves the model)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    tqdm_class = progress_tqdm(report) if report else None
    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=CONFIG_AND_TOKENIZER + (SAFETENSORS_FILES if weights else []),
                tqdm_class=tqdm_class,
            )
        )
        if weights and not has_weights(folder):
            folder = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    allow_patterns=CONFIG_AND_TOKENIZER + PICKLE_FILES,
                    tqdm_class=tqdm_class,
                )
            )
    except GatedRepoError as exc:
        raise ModelLoadError(
            f"{where} is gated on the Hugging Face Hub; log in with `hf auth login` ({exc})", ErrorKind.MODEL_NOT_FOUND
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as exc:
        raise ModelLoadError(
            f"{where} was not found on the Hugging Face Hub ({type(exc).__name__})", ErrorKind.MODEL_NOT_FOUND
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise ModelLoadError(
            f"{where} is not in the Hugging Face cache and cannot be downloaded "
            f"({'HF_HUB_OFFLINE is set' if os.environ.get('HF_HUB_OFFLINE') else 'the Hub is unreachable'}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            ErrorKind.OFFLINE,
        ) from None
    except OSError as exc:  # connection refused, DNS failure, time-outs
        raise ModelLoadError(f"{where} could not be downloaded: {exc}", ErrorKind.OFFLINE) from None
    if weights and not has_weights(folder):
        raise ModelLoadError(f"{where} has no safetensors or pytorch_model.bin weights", ErrorKind.MODEL_NOT_FOUND)
    return check_model_folder(folder)


def resolve_model_folder(
    model: str, revision: str | None = None, report: Progress | None = None, weights: bool = True
) -> Path:
    if model == BUNDLED:
        folder = BUNDLED_MODEL_DIR
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"the bundled model is missing from {folder}", ErrorKind.MODEL_NOT_FOUND)
        return folder
    if looks_like_path(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {folder} does not exist", ErrorKind.MODEL_NOT_FOUND)
        return check_model_folder(folder)
    return download(model, revision, report, weights)
