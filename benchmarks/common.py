"""What every benchmark shares: the random CodeGen-350M-shaped checkpoint, timing, percentiles, arguments."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

CODEGEN_350M_SHAPE = dict(
    vocab_size=51200, n_positions=2048, n_ctx=2048, n_embd=1024, n_layer=20, n_head=16, rotary_dim=32,
    activation_function="gelu_new", tie_word_embeddings=False,
)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn: Callable[[], None], repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_read_bandwidth() -> float:
    """GB/s at which this machine reads memory: a sum over 1.5 GB, far beyond any cache, best of 3. A decode
    step reads every weight once, so this is its ceiling (a sum over a cached tensor reports far more)."""
    x = torch.ones(384 * 1024 * 1024)  # 1.5 GB of float32
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * x.element_size() / best / 1e9


def random_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A CodeGen-350M-shaped checkpoint with random weights, in the Hub layout (model.safetensors)."""
    import shutil

    from codegen_lsp.inference.config import CodeGenConfig
    from codegen_lsp.inference.export import save_checkpoint
    from codegen_lsp.inference.model import CodeGen, init_weights
    from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR

    if (folder / "model.safetensors").exists():
        return folder
    torch.manual_seed(seed)
    model = CodeGen(CodeGenConfig(**{k: v for k, v in CODEGEN_350M_SHAPE.items() if k != "n_ctx"}))
    init_weights(model)
    save_checkpoint(model, folder)
    for file in BUNDLED_TOKENIZER_DIR.iterdir():
        shutil.copy(file, folder / file.name)
    return folder


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "codegen-lsp-bench"),
                        help="where the random CodeGen-350M-shaped checkpoint is written (once)")
