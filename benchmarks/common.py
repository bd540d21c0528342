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
# The published checkpoints' shapes (config.json of Salesforce/codegen-{350M,2B,6B,16B}-*): speed and memory depend
# on these only.
SHAPES = {
    "350M": CODEGEN_350M_SHAPE,
    "2B": {**CODEGEN_350M_SHAPE, "n_embd": 2560, "n_layer": 32, "n_head": 32, "rotary_dim": 64},
    "6B": {**CODEGEN_350M_SHAPE, "n_embd": 4096, "n_layer": 33, "n_head": 16, "rotary_dim": 64},
    "16B": {**CODEGEN_350M_SHAPE, "n_embd": 6144, "n_layer": 34, "n_head": 24, "rotary_dim": 64},
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
    """A CodeGen checkpoint of `shape` (SHAPES) with random weights, in the Hub layout. The 350M one is built as a
    model and saved in float32 (model.safetensors); the larger ones are written tensor by tensor in float16, one
    safetensors shard per layer with an index (as the Hub shards them), so that writing never holds more than a
    layer: a 6B model would not fit in this machine's memory as float32."""
    import shutil

    from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR

    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").exists() or index.exists():
        return folder
    if shape == "350M":
        from codegen_lsp.inference.checkpoint.config import CodeGenConfig
        from codegen_lsp.inference.checkpoint.export import save_checkpoint
        from codegen_lsp.inference.model.codegen import CodeGen, init_weights

        torch.manual_seed(seed)
        model = CodeGen(CodeGenConfig(**{k: v for k, v in SHAPES[shape].items() if k != "n_ctx"}))
        init_weights(model)
        save_checkpoint(model, folder)
    else:
        write_sharded_random_checkpoint(folder, SHAPES[shape], seed)
    for file in BUNDLED_TOKENIZER_DIR.iterdir():
        shutil.copy(file, folder / file.name)
    return folder


def write_sharded_random_checkpoint(folder: Path, shape: dict, seed: int, std: float = 0.02) -> None:
    """Random float16 weights with init_weights' statistics (normal(0, std), output projections scaled by
    1/sqrt(2 n_layer), norms 1, biases 0), written shard by shard: the shared tensors, then one shard per layer;
    the index last, so that an interrupted write is started again."""
    import math
    import os
    import shutil

    from safetensors.torch import save_file

    from codegen_lsp.inference.checkpoint.config import CodeGenConfig
    from codegen_lsp.inference.checkpoint.layout import expected_shapes

    config = CodeGenConfig(**{k: v for k, v in shape.items() if k != "n_ctx"})
    folder.mkdir(parents=True, exist_ok=True)
    needed = sum(math.prod(s) for s in expected_shapes(config).values()) * 2  # float16
    free = shutil.disk_usage(folder).free
    if free < needed * 1.2:
        raise SystemExit(f"{folder}: writing the random checkpoint needs {needed / 1e9:.1f} GB, {free / 1e9:.1f} free")
    generator = torch.Generator().manual_seed(seed)
    shapes = expected_shapes(config)
    shards = [[k for k in shapes if not k.startswith("transformer.h.")]]
    shards += [[k for k in shapes if k.startswith(f"transformer.h.{i}.")] for i in range(config.n_layer)]
    weight_map = {}
    for number, keys in enumerate(shards):
        name = f"model-{number + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for key in keys:
            if key.endswith(("ln_1.weight", "ln_f.weight")):
                tensors[key] = torch.ones(shapes[key], dtype=torch.float16)
            elif key.endswith("bias"):
                tensors[key] = torch.zeros(shapes[key], dtype=torch.float16)
            else:
                scale = std / (2 * config.n_layer) ** 0.5 if key.endswith("out_proj.weight") or "fc_out" in key else std
                tensors[key] = (torch.randn(shapes[key], generator=generator) * scale).half()
            weight_map[key] = name
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        del tensors
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    tmp = folder / "model.safetensors.index.json.tmp"
    tmp.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    os.replace(tmp, folder / "model.safetensors.index.json")


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
        converted = checkpoint.parent / f"{checkpoint.name}-ctranslate2-{compute_type}"  # per shape
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
