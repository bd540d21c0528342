"""What every benchmark shares: the random CodeGen-350M-shaped checkpoint, timing, percentiles, arguments."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

CODEGEN_350M_SHAPE = dict(
    vocab_size=51200,
    n_positions=2048,
    n_ctx=2048,
    n_embd=1024,
    n_layer=20,
    n_head=16,
    rotary_dim=32,
    activation_function="gelu_new",
    tie_word_embeddings=False,
)
# The published checkpoints' shapes (config.json of Salesforce/codegen-{350M,2B}-*): speed depends on these only.
SHAPES = {
    "350M": CODEGEN_350M_SHAPE,
    "2B": {**CODEGEN_350M_SHAPE, "n_embd": 2560, "n_layer": 32, "n_head": 32, "rotary_dim": 64},
}


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


def in_fresh_process(function: Callable, *args):
    """function(*args) in a new Python process (spawned; function and result are pickled), its result returned.
    Each engine is measured in a process of its own, so that no engine's thread pool competes with another's:
    CTranslate2 brings its own OpenMP runtime, and in a process that has loaded it our int8 decode ran ~20%
    slower (0.67 s -> 0.81 s for 32 tokens on the 350M shape), long after its last call."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def read_bandwidth_probe() -> Callable[[], float]:
    """A function giving the GB/s at which this machine reads memory now: a sum over 1.5 GB (allocated once, far
    beyond any cache), best of 2. A decode step reads every weight once, so this is its ceiling (a sum over a
    cached tensor reports far more). What a process sees depends on the memory it is given (31-64 GB/s between
    processes on this project's 2-core VM, steady within each), so the engine benchmark measures it in our
    engine's own process, right before each decode run."""
    x = torch.ones(384 * 1024 * 1024)  # 1.5 GB of float32

    def probe() -> float:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            x.sum()
            best = min(best, time.perf_counter() - start)
        return x.numel() * x.element_size() / best / 1e9

    return probe


def random_checkpoint(folder: Path, seed: int = 0, shape: str = "350M") -> Path:
    """A CodeGen checkpoint of `shape` (SHAPES) with random weights, in the Hub layout (model.safetensors);
    the 2B one is stored in float16 (5.6 GB instead of 11)."""
    import shutil

    from codegen_lsp.inference.checkpoint.config import CodeGenConfig
    from codegen_lsp.inference.checkpoint.export import save_checkpoint
    from codegen_lsp.inference.model.codegen import CodeGen, init_weights
    from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR

    if (folder / "model.safetensors").exists():
        return folder
    torch.manual_seed(seed)
    model = CodeGen(CodeGenConfig(**{k: v for k, v in SHAPES[shape].items() if k != "n_ctx"}))
    init_weights(model)
    save_checkpoint(model, folder, dtype=None if shape == "350M" else torch.float16)
    for file in BUNDLED_TOKENIZER_DIR.iterdir():
        shutil.copy(file, folder / file.name)
    return folder


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_checkpoint(args: argparse.Namespace) -> Path:
    """The random checkpoint of the shape the benchmark was asked for, written once under --workdir."""
    shape = getattr(args, "shape", "350M")
    return random_checkpoint(Path(args.workdir) / f"codegen-{shape}-random", shape=shape)


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--shape", default="350M", choices=sorted(SHAPES), help="the CodeGen shape measured")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "codegen-lsp-bench"),
        help="where the random CodeGen-350M-shaped checkpoint is written (once)",
    )


CTRANSLATE2_COMPUTE_TYPES = {"float32": "float32", "int8": "int8"}  # our dtype -> CTranslate2's, on the CPU


class CTranslate2Peer:
    """CTranslate2 (a benchmark-only peer: `pip install '.[bench]'`) on the same checkpoint, converted once into
    `workdir` by its own converter. Token ids go in and out through the converted model's vocabulary."""

    def __init__(self, checkpoint: Path, dtype: str, threads: int, device: str = "cpu") -> None:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter

        compute_type = CTRANSLATE2_COMPUTE_TYPES[dtype]
        converted = checkpoint.parent / f"ctranslate2-{compute_type}"
        if not (converted / "model.bin").exists():
            TransformersConverter(str(checkpoint)).convert(str(converted), quantization=compute_type, force=True)
        self.generator = ctranslate2.Generator(
            str(converted), device=device, compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        self.vocabulary: list[str] = json.loads((converted / "vocabulary.json").read_text(encoding="utf-8"))
        self.index = {token: i for i, token in enumerate(self.vocabulary)}

    def generate(self, ids: list[int], new_tokens: int, static: list[int] = ()) -> list[int]:
        """Greedy, exactly `new_tokens` tokens (no early stop); `static` is a prefix whose state CTranslate2 caches
        across calls (its static_prompt)."""
        result = self.generator.generate_batch(
            [[self.vocabulary[i] for i in ids]],
            max_length=new_tokens,
            min_length=new_tokens,
            sampling_topk=1,
            include_prompt_in_result=False,
            static_prompt=[self.vocabulary[i] for i in static] or None,
            cache_static_prompt=True,
            end_token=[],
        )[0]
        return [self.index[token] for token in result.sequences[0]]


def ctranslate2_peer(checkpoint: Path, dtype: str, threads: int, device: str = "cpu") -> CTranslate2Peer | str:
    """The peer for `dtype`, or why there is none (a table cell)."""
    if dtype not in CTRANSLATE2_COMPUTE_TYPES:
        return "—"
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return "not installed"
    return CTranslate2Peer(checkpoint, dtype, threads, device)
