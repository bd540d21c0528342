"""Train the bundled offline model: a small CodeGen, from scratch, on the Python standard library, on the CPU.

    nohup nice -n 19 python scripts/train_bundled_model.py > /tmp/train_bundled.log 2>&1 &
    python scripts/train_bundled_model.py --out /tmp/smoke --max-steps 20 --minutes 3   # a smoke run

Writes `inference/bundled/` in the Hub layout (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json) and training_run.json: what was trained on, for how long, on what machine, and the
training split's token counts (the unigram baseline of the evaluation and of the tests).

Choices, and why (measured on the 2-core Xeon with AMX this was built on):
- Data: the interpreter's stdlib *.py files, in two parts: the library proper and its test suites (test/,
  tests/, idle_test/: 1056 files, 62% of the bytes). 6.8M parameters trained on ~15M tokens would see the
  library's 2.7M training tokens 5.4 times, past the ~4 passes up to which repeated data helps about as
  much as new data (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"). So
  `test_share` of the training windows come from the tests (about one pass over them) and the rest from the
  library (about 3.5 passes). Evaluation is on held-out library files only: the product completes ordinary
  code.
  Dropped: files that are not UTF-8 or do not parse as Python 3 (lib2to3's Python 2 fixtures, deliberately bad
  syntax), generated codec tables (gencodec.py), the build-specific _sysconfigdata*, and files over
  MAX_FILE_CHARS (pydoc_data/topics.py: one 750 KB string of help text). A file is held out when the SHA-256
  of its relative path falls in the first HELD_OUT_PERCENT: the same files on every machine, never trained on.
- Tokenizer: a byte-level BPE of 8192 tokens, trained here on the library's training files. CodeGen's own
  50295-token tokenizer would put 12.9M parameters in the embedding at n_embd 256 (twice the rest of the
  model) and spend much of each step on a 50k-wide softmax. 8192 tokens need only 8% more tokens than 16384
  for the same text (4096: 17% more). It keeps CodeGen's pipeline: GPT-2's ByteLevel pre-tokenizer, added
  tokens for runs of 2-31 spaces and 2-9 tabs (indentation is one token), `<|endoftext|>` as bos and eos; so
  our tokenizer class and transformers' CodeGenTokenizer load it as it is.
- Precision: bf16 autocast with fp32 master weights: 4.7x the fp32 step rate here (oneDNN runs bf16 matmuls on
  AMX). torch.compile measured 9% faster and costs minutes of compilation, so it is not used.
- Schedule: linear warm-up, then cosine decay to 10% over `max(step / max_steps, elapsed / budget)`, so that
  the learning rate anneals whichever limit ends the run. Unloaded, the steps end it and the run is
  reproducible; when colleagues' work slows this niced process, the wall-clock cap ends it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import re
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # the tokenizers library's thread pool: 2 shared cores

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from build_bundled_tokenizer import ENDOFTEXT, codegen_whitespace_tokens  # noqa: E402

from codegen_lsp.inference.checkpoint.config import CodeGenConfig  # noqa: E402
from codegen_lsp.inference.checkpoint.hub import BUNDLED_MODEL_DIR  # noqa: E402
from codegen_lsp.inference.checkpoint.layout import to_checkpoint  # noqa: E402
from codegen_lsp.inference.model.codegen import CodeGen, init_weights  # noqa: E402
from codegen_lsp.tokenizer.codegen_tokenizer import CodeGenTokenizer  # noqa: E402

RUN_FILE = "training_run.json"
SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
TEST_DIRS = frozenset({"test", "tests", "idle_test"})
MAX_FILE_CHARS = 300_000
HELD_OUT_PERCENT = 5
# The whitespace tokens are split off before BPE when encoding; the BPE trainer must see the same pieces.
WHITESPACE_RUN = re.compile(r" {2,}|\t{2,}")
SAVE_RESERVE_S = 60.0  # of the wall-clock budget, kept for the last evaluation and writing the files


@dataclass(frozen=True)
class TrainSettings:
    vocab_size: int = 8192
    n_positions: int = 512  # the context length trained for; the server windows prompts to it
    n_embd: int = 256
    n_layer: int = 6
    n_head: int = 4
    rotary_dim: int = 32  # half of the 64-wide heads, as in codegen-350M
    batch_size: int = 8  # windows of n_positions tokens per step (16 reached a loss 0.1 higher in the same time)
    test_share: float = 0.35  # of the windows drawn from the test suites (module docstring)
    max_steps: int = 3600
    minutes: float = 58.0  # wall-clock cap for the whole script, tokenizer training included
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_windows: int = 24  # held-out windows for the loss logged during training
    seed: int = 1234
    threads: int = 2


# -- data ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the stdlib, with /
    text: str
    is_test: bool


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_generated(relative: str, text: str) -> bool:
    return "gencodec.py" in text[:2000] or Path(relative).name.startswith("_sysconfigdata")


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def is_held_out(relative: str) -> bool:
    """Decided by the path alone, so the same files are held out on every machine and for every file list."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def source_files(root: Path | None = None) -> list[SourceFile]:
    """The stdlib files worth learning from, sorted by path."""
    root = root or stdlib_root()
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        folders = set(relative.parts[:-1])
        if SKIPPED_DIRS & folders:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > MAX_FILE_CHARS or is_generated(relative.as_posix(), text) or not parses(text):
            continue
        files.append(SourceFile(relative.as_posix(), text, bool(TEST_DIRS & folders)))
    return files


def split_files(files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile], list[SourceFile]]:
    """(library files to train on, test-suite files to train on, held-out library files)."""
    kept = [f for f in files if not is_held_out(f.path)]
    held_out = [f for f in files if is_held_out(f.path) and not f.is_test]
    return [f for f in kept if not f.is_test], [f for f in kept if f.is_test], held_out


def token_stream(tokenizer: CodeGenTokenizer, texts: list[str]) -> torch.Tensor:
    """The texts as one stream of ids, each followed by <|endoftext|> as in CodeGen's training data. (N,)"""
    ids: list[int] = []
    for encoding in tokenizer.backend.encode_batch(texts, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.int32)


def unigram_counts(stream: torch.Tensor, vocab_size: int) -> list[int]:
    return torch.bincount(stream.long(), minlength=vocab_size).tolist()


# -- tokenizer ----------------------------------------------------------------------------------------------


def bpe_pieces(texts: list[str]) -> Iterator[str]:
    """The texts cut at the whitespace runs that the added tokens take before BPE runs."""
    for text in texts:
        yield from (piece for piece in WHITESPACE_RUN.split(text) if piece)


def train_tokenizer(texts: list[str], vocab_size: int, n_positions: int) -> CodeGenTokenizer:
    """A byte-level BPE of exactly `vocab_size` tokens in CodeGen's pipeline; <|endoftext|> is id 0 and the
    whitespace tokens are the last ids."""
    whitespace = codegen_whitespace_tokens()
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(add_prefix_space=True, use_regex=True, trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(whitespace),
        min_frequency=2,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(bpe_pieces(texts), trainer)
    backend.add_tokens([AddedToken(w, lstrip=False, rstrip=False, normalized=True, special=False) for w in whitespace])
    if backend.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise RuntimeError(
            f"the corpus gave {backend.get_vocab_size(with_added_tokens=True)} tokens, "
            f"not {vocab_size}: too little text for this vocabulary"
        )
    tokenizer_config = {
        "tokenizer_class": "CodeGenTokenizer",
        "bos_token": ENDOFTEXT,
        "eos_token": ENDOFTEXT,
        "unk_token": ENDOFTEXT,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": n_positions,
    }
    return CodeGenTokenizer(backend, tokenizer_config)


# -- training -----------------------------------------------------------------------------------------------


def model_config(settings: TrainSettings, eos_token_id: int) -> CodeGenConfig:
    return CodeGenConfig(
        vocab_size=settings.vocab_size,
        n_positions=settings.n_positions,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        rotary_dim=settings.rotary_dim,
        n_inner=None,
        activation_function="gelu_new",
        tie_word_embeddings=True,  # saves 2.1M parameters; transformers ties them too (the tests check)
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    )


def learning_rate(settings: TrainSettings, step: int, progress: float) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return settings.lr * (settings.min_lr_ratio + (1.0 - settings.min_lr_ratio) * cosine)


def make_optimizer(model: CodeGen, settings: TrainSettings) -> torch.optim.AdamW:
    """Weight decay on the matrices (the tied embedding included), not on biases and layer norms."""
    params = {id(p): p for p in model.parameters()}.values()  # the tied matrix once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": settings.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.95), eps=1e-8)


def batch(
    streams: tuple[torch.Tensor, torch.Tensor], test_share: float, size: int, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` windows of length + 1 tokens at random offsets, each from streams[1] (the tests) with
    probability `test_share`, else from streams[0] (the library). Returns inputs and targets, (B, T) int64."""
    windows = []
    for from_tests in (torch.rand(size, generator=generator) < test_share).tolist():
        stream = streams[1] if from_tests else streams[0]
        start = int(torch.randint(0, stream.numel() - length - 1, (1,), generator=generator))
        windows.append(stream[start : start + length + 1])
    tokens = torch.stack(windows).long()  # (B, T + 1)
    return tokens[:, :-1], tokens[:, 1:]


def lm_loss(model: CodeGen, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(inputs)  # (B, T, V)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


@torch.no_grad()
def held_out_loss(model: CodeGen, windows: torch.Tensor) -> float:
    """Mean loss on windows (W, T + 1), in the training precision: a progress signal, not the evaluation."""
    model.eval()
    loss = lm_loss(model, windows[:, :-1], windows[:, 1:]).item()
    model.train()
    return loss


class ThreadChooser:
    """Picks 1 or 2 intra-op threads by measured step time.

    Niced, this run gets a core only when nobody else wants it. While another process holds one of the two
    cores, a 2-thread step waits at every parallel region for its starved second thread (measured 5-9x slower
    than unloaded) and 1 thread is faster. One step runs with the other setting at step 10, every
    `probe_every` steps, and right after a step that took over twice the usual time."""

    def __init__(self, preferred: int, probe_every: int = 40) -> None:
        self.choices = (preferred, 1) if preferred > 1 else (preferred,)
        self.current = preferred
        self.probe_every = probe_every
        self.seconds: dict[int, float] = {}  # moving average of the step time per thread count
        self.steps_with: dict[int, int] = dict.fromkeys(self.choices, 0)
        self.probe_next = False

    def threads_for(self, step: int) -> int:
        if len(self.choices) > 1 and (self.probe_next or step == 10 or (step > 0 and step % self.probe_every == 0)):
            self.probe_next = False
            return next(n for n in self.choices if n != self.current)
        return self.current

    def record(self, threads: int, seconds: float) -> None:
        self.steps_with[threads] += 1
        previous = self.seconds.get(threads)
        probe = threads != self.current  # a probe measures the conditions of now: it replaces the average
        self.seconds[threads] = seconds if previous is None or probe else 0.7 * previous + 0.3 * seconds
        if len(self.seconds) == len(self.choices):
            self.current = min(self.seconds, key=self.seconds.__getitem__)
        # Much slower than usual, yet still the choice: measure the other setting now.
        self.probe_next = previous is not None and seconds > 2 * previous and threads == self.current


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "precision": "bf16 autocast, fp32 master weights",
    }


def save_model(folder: Path, model: CodeGen, config: CodeGenConfig, tokenizer: CodeGenTokenizer, run: dict) -> None:
    """The Hub layout of transformers' save_pretrained. Weights in fp32: 27 MB is within the 40 MB allowance,
    and what is shipped is exactly what was trained."""
    folder.mkdir(parents=True, exist_ok=True)
    state = to_checkpoint({k: v.float() for k, v in model.state_dict().items()}, config)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config_json = {**config.to_dict(), "dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config_json, indent=2) + "\n", encoding="utf-8")
    tokenizer.save(folder)
    (folder / RUN_FILE).write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")


def parse_settings() -> tuple[TrainSettings, Path]:
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BUNDLED_MODEL_DIR)
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    return TrainSettings(**{name: getattr(args, name) for name in asdict(defaults)}), args.out


def main() -> None:
    settings, out = parse_settings()
    started = time.perf_counter()
    deadline = started + settings.minutes * 60 - SAVE_RESERVE_S
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)

    files = source_files()
    library, tests, held_out = split_files(files)
    print(
        f"{len(files)} files from {stdlib_root()}: training on {len(library)} library and {len(tests)} "
        f"test-suite files, {len(held_out)} library files held out",
        flush=True,
    )
    tokenizer = train_tokenizer([f.text for f in library], settings.vocab_size, settings.n_positions)
    library_stream = token_stream(tokenizer, [f.text for f in library])  # (N_lib,)
    test_stream = token_stream(tokenizer, [f.text for f in tests])  # (N_test,)
    held_out_stream = token_stream(tokenizer, [f.text for f in held_out])  # (N_held,)
    library_chars = sum(len(f.text) for f in library)
    data_s = time.perf_counter() - started
    print(
        f"tokenizer trained and data encoded in {data_s:.1f}s: {library_stream.numel()} library tokens "
        f"({library_chars / library_stream.numel():.2f} chars/token), {test_stream.numel()} test-suite "
        f"tokens, {held_out_stream.numel()} held out",
        flush=True,
    )

    config = model_config(settings, tokenizer.eos_token_id)
    model = CodeGen(config)
    init_weights(model)
    model.train()
    optimizer = make_optimizer(model, settings)
    print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {config}", flush=True)
    T = settings.n_positions
    n_eval = min(settings.eval_windows, held_out_stream.numel() // (T + 1))
    eval_windows = held_out_stream[: n_eval * (T + 1)].view(n_eval, T + 1).long()  # (W, T + 1)
    generator = torch.Generator().manual_seed(settings.seed)
    chooser = ThreadChooser(settings.threads)

    train_started = time.perf_counter()
    budget_s = max(1.0, deadline - train_started)
    curve: list[dict] = []
    step, loss_avg, stopped_by = 0, float("nan"), "max_steps"
    while step < settings.max_steps:
        step_started = time.perf_counter()
        if step_started >= deadline:
            stopped_by = "wall-clock cap"
            break
        progress = max(step / settings.max_steps, (step_started - train_started) / budget_s)
        lr = learning_rate(settings, step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        threads = chooser.threads_for(step)
        torch.set_num_threads(threads)
        inputs, targets = batch((library_stream, test_stream), settings.test_share, settings.batch_size, T, generator)
        loss = lm_loss(model, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_s = time.perf_counter() - step_started
        chooser.record(threads, step_s)
        step += 1
        loss_avg = loss.item() if step == 1 else 0.9 * loss_avg + 0.1 * loss.item()
        minutes = (time.perf_counter() - train_started) / 60
        if step % 10 == 0 or step == 1:
            print(
                f"step {step:5d}  loss {loss_avg:.3f}  lr {lr:.2e}  threads {threads}  {step_s:.2f}s/step  "
                f"{minutes:.1f} min",
                flush=True,
            )
        if step % settings.eval_every == 0:
            torch.set_num_threads(chooser.current)
            point = {
                "step": step,
                "minutes": round(minutes, 2),
                "train_loss": round(loss_avg, 4),
                "held_out_loss": round(held_out_loss(model, eval_windows), 4),
            }
            curve.append(point)
            print(f"eval  {point}", flush=True)
    train_s = time.perf_counter() - train_started
    torch.set_num_threads(chooser.current)
    final_held_out = held_out_loss(model, eval_windows)
    print(
        f"stopped by {stopped_by} after {step} steps, {train_s / 60:.1f} min; held-out loss {final_held_out:.3f}",
        flush=True,
    )

    tokens_seen = step * settings.batch_size * T
    run = {
        "settings": asdict(settings),
        "steps": step,
        "stopped_by": stopped_by,
        "tokens_seen": tokens_seen,
        "passes_over_library": round(tokens_seen * (1 - settings.test_share) / library_stream.numel(), 2),
        "passes_over_tests": round(tokens_seen * settings.test_share / test_stream.numel(), 2),
        "seconds": {
            "tokenizer_and_data": round(data_s, 1),
            "training": round(train_s, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "steps_per_thread_count": chooser.steps_with,
        "hardware": hardware(),
        "parameters": model.num_parameters(),
        "final_train_loss": round(loss_avg, 4),
        "final_held_out_loss": round(final_held_out, 4),
        "curve": curve,
        "data": {
            "stdlib": str(stdlib_root()),
            "library_files": len(library),
            "test_files": len(tests),
            "library_chars": library_chars,
            "library_tokens": library_stream.numel(),
            "test_tokens": test_stream.numel(),
            "held_out_tokens": held_out_stream.numel(),
            "held_out_files": [f.path for f in held_out],
        },
        # The unigram baseline: token frequencies of the library's training files.
        "train_unigram_counts": unigram_counts(library_stream, settings.vocab_size),
    }
    save_model(out, model, config, tokenizer, run)
    print(f"saved to {out}, {time.perf_counter() - started:.0f}s after the start", flush=True)


if __name__ == "__main__":
    main()
