"""Evaluate the bundled model on the held-out standard-library files; write and print its REPORT.md.

    python scripts/evaluate_bundled_model.py                       # inference/bundled
    python scripts/evaluate_bundled_model.py --folder /tmp/smoke --positions 50
    python scripts/evaluate_bundled_model.py --compare float32,bfloat16,int8,int4:32,int4:64,int4:128

The report runs in fp32 on the CPU through our loader, so the numbers do not depend on the machine's bf16
support. `--compare` measures the same loss and next-line exact match for each listed dtype instead (int4:G = int4
in groups of G columns, int4:G:head = with the head quantized too, where the head is not tied), and prints one
table (REPORT.md is left alone). Each measure has a baseline that needs no model:
- loss and perplexity per token over the held-out files (windows of n_positions tokens, every token predicted
  once) vs a unigram model of the training split's token frequencies (add-one smoothed), same tokenizer;
- next-line exact match: at line starts sampled with a fixed seed (of lines that are not blank), the file up
  to there is the prompt, the Engine completes greedily to the end of the line (the product's single-line
  stop rule), and the stripped line is compared with the true one; the baseline repeats the previous
  non-blank line;
- three completions shown verbatim: the first three positions of that sample, not picked by hand.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_bundled_model import RUN_FILE, SourceFile, source_files, split_files, token_stream  # noqa: E402

from codegen_lsp.inference.checkpoint.hub import BUNDLED_MODEL_DIR  # noqa: E402
from codegen_lsp.inference.checkpoint.loading import LoadedModel, load_folder  # noqa: E402
from codegen_lsp.inference.model.quantize import WeightFormat  # noqa: E402
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions  # noqa: E402
from codegen_lsp.inference.rules.stop_rule import StopRule  # noqa: E402
from codegen_lsp.inference.worker.engine import Engine  # noqa: E402

REPORT_FILE = "REPORT.md"
SEED = 0
LINE_TOKENS = 48  # a stdlib line is at most ~100 characters, ~30 tokens
EXAMPLE_TOKENS = 64
EXAMPLE_CONTEXT_LINES = 8
EXAMPLE_LINES = 4
# With and without a trailing space: byte-level BPE joins a space to the word after it, so a prompt that ends
# in a space ends in a lone-space token that the training text almost never has before a name.
OBVIOUS_PROMPTS = ("import os\nimport", "import os\nimport ", "class Point:\n    def __init__(self", "if __name__ ==")
SINGLE_LINE = GenerationOptions(max_new_tokens=LINE_TOKENS, stop_rule=StopRule(patterns=(), single_line=True))


@dataclass(frozen=True)
class Position:
    file: SourceFile
    line: int  # index of the line to predict; the prompt is every line before it

    @property
    def lines(self) -> list[str]:
        return self.file.text.splitlines(keepends=True)

    @property
    def prompt(self) -> str:
        return "".join(self.lines[: self.line])

    @property
    def truth(self) -> str:
        return self.lines[self.line].strip()

    @property
    def previous(self) -> str:
        """The previous non-blank line, stripped: the baseline's guess."""
        return next((line.strip() for line in reversed(self.lines[: self.line]) if line.strip()), "")


@dataclass(frozen=True)
class LossRow:
    name: str
    loss: float  # nats per token
    chars_per_token: float

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_char(self) -> float:
        return self.loss / math.log(2) / self.chars_per_token


@dataclass(frozen=True)
class NextLine:
    positions: list[Position]
    model_hits: int
    baseline_hits: int
    model_similarity: float
    baseline_similarity: float
    median_ms: float


# -- loss ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def token_losses(loaded: LoadedModel, stream: torch.Tensor, batch: int = 8) -> tuple[torch.Tensor, ...]:
    """(targets, the model's loss on each) for every token after the first: windows of n_positions + 1
    tokens with stride n_positions, so each token is predicted once, from up to n_positions - 1 tokens."""
    T = loaded.config.n_positions
    starts = list(range(0, stream.numel() - 1, T))
    targets, losses = [], []
    for i in range(0, len(starts), batch):
        windows = [stream[s : s + T + 1].long() for s in starts[i : i + batch]]  # each (<= T + 1,)
        full = [w for w in windows if w.numel() == T + 1]
        groups = ([torch.stack(full)] if full else []) + [w[None] for w in windows if w.numel() != T + 1]
        for tokens in groups:  # (B, L + 1)
            logits = loaded.model(tokens[:, :-1]).float()  # (B, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")  # (B*L,)
            targets.append(tokens[:, 1:].flatten())
            losses.append(loss)
    return torch.cat(targets), torch.cat(losses)


def unigram_losses(counts: list[int], targets: torch.Tensor) -> torch.Tensor:
    smoothed = torch.tensor(counts, dtype=torch.float64) + 1.0  # add-one: every token has some probability
    log_probs = smoothed.log() - smoothed.sum().log()  # (V,)
    return -log_probs[targets].float()


def evaluate_loss(loaded: LoadedModel, held_out: list[SourceFile], counts: list[int]) -> tuple[list[LossRow], int]:
    stream = token_stream(loaded.tokenizer, [f.text for f in held_out])
    targets, model_loss = token_losses(loaded, stream)
    chars_per_token = sum(len(f.text) for f in held_out) / stream.numel()
    measured = (("bundled model", model_loss), ("unigram baseline", unigram_losses(counts, targets)))
    rows = [LossRow(name, losses.double().mean().item(), chars_per_token) for name, losses in measured]
    return rows, targets.numel()


# -- next line ----------------------------------------------------------------------------------------------


def sample_positions(files: list[SourceFile], count: int, seed: int = SEED) -> list[Position]:
    pool = [Position(f, i) for f in files for i, line in enumerate(f.text.splitlines()) if i > 0 and line.strip()]
    return random.Random(seed).sample(pool, min(count, len(pool)))


def complete(engine: Engine, request_id: int, prompt: str, options: GenerationOptions) -> tuple[str, float]:
    """(completion text, milliseconds)."""
    result = engine.generate(CompletionRequest(request_id, f"held-out-{request_id}", prompt, options))
    return result.candidates[0].text, result.timings.total_ms


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def evaluate_next_line(engine: Engine, positions: list[Position]) -> NextLine:
    model_hits = baseline_hits = 0
    model_similarity, baseline_similarity, latencies = [], [], []
    for i, position in enumerate(positions):
        text, ms = complete(engine, i, position.prompt, SINGLE_LINE)
        predicted = text.split("\n", 1)[0].strip()
        model_hits += predicted == position.truth
        baseline_hits += position.previous == position.truth
        model_similarity.append(similarity(predicted, position.truth))
        baseline_similarity.append(similarity(position.previous, position.truth))
        latencies.append(ms)
    return NextLine(
        positions,
        model_hits,
        baseline_hits,
        statistics.mean(model_similarity),
        statistics.mean(baseline_similarity),
        statistics.median(latencies),
    )


# -- report -------------------------------------------------------------------------------------------------


def fenced(text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}python\n{text.rstrip(chr(10))}\n{fence}"


def example_sections(engine: Engine, positions: list[Position]) -> list[str]:
    out = []
    for i, position in enumerate(positions, start=1):
        options = GenerationOptions(max_new_tokens=EXAMPLE_TOKENS)
        text, _ = complete(engine, 10_000 + i, position.prompt, options)
        context = "".join(position.lines[max(0, position.line - EXAMPLE_CONTEXT_LINES) : position.line])
        truth = "".join(position.lines[position.line : position.line + EXAMPLE_LINES])
        shown = "".join(text.splitlines(keepends=True)[:EXAMPLE_LINES])
        out += [
            "",
            f"### {i}. `{position.file.path}`, line {position.line + 1}",
            "",
            "Before the cursor:",
            "",
            fenced(context),
            "",
            "Completion:",
            "",
            fenced(shown),
            "",
            "The file:",
            "",
            fenced(truth),
        ]
    return out


def render(
    loaded: LoadedModel,
    run: dict,
    rows: list[LossRow],
    tokens: int,
    held_out: list[SourceFile],
    next_line: NextLine,
    examples: list[str],
    obvious: list[tuple[str, str]],
    note: str,
    threads: int,
) -> str:
    config, data, settings = loaded.config, run["data"], run["settings"]
    seconds, hardware = run["seconds"], run["hardware"]
    n = len(next_line.positions)
    size_mb = (loaded.folder / "model.safetensors").stat().st_size / 1e6
    # Unique storages: the loader gives wte and lm_head two Parameters of the one tied tensor.
    parameters = sum(p.numel() for p in {p.data_ptr(): p for p in loaded.model.parameters()}.values())
    lines = [
        "# The bundled offline model",
        "",
        "A small CodeGen-architecture model (transformers' `CodeGenForCausalLM`), trained from scratch on "
        "the Python standard library by `scripts/train_bundled_model.py`, evaluated by "
        "`scripts/evaluate_bundled_model.py` on library files it never saw. It stands in for "
        "Salesforce/codegen-350M-mono when the Hub cannot be reached.",
        note,
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {parameters / 1e6:.2f}M (the embedding is tied to the output layer) |",
        f"| model.safetensors | {size_mb:.1f} MB, float32 |",
        f"| layers x width x heads | {config.n_layer} x {config.n_embd} x {config.n_head} (head "
        f"{config.head_dim}, rotary_dim {config.rotary_dim}, MLP {config.inner_dim}) |",
        f"| context (n_positions) | {config.n_positions} tokens |",
        f"| tokenizer | byte-level BPE, {loaded.tokenizer.vocab_size} tokens with CodeGen's whitespace "
        f"tokens; {rows[0].chars_per_token:.2f} characters per token on the held-out files |",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| data | Python {hardware['python']}'s standard library: {data['library_files']} library files "
        f"({data['library_tokens'] / 1e6:.2f}M tokens) and {data['test_files']} test-suite files "
        f"({data['test_tokens'] / 1e6:.2f}M tokens); {len(data['held_out_files'])} library files held out |",
        f"| steps | {run['steps']} of {settings['max_steps']} (ended by {run['stopped_by']}) of "
        f"{settings['batch_size']} x {settings['n_positions']} tokens: {run['tokens_seen'] / 1e6:.1f}M "
        f"tokens, {run['passes_over_library']} passes over the library, {run['passes_over_tests']} over the "
        "tests |",
        f"| time | {seconds['total'] / 60:.1f} min in all: {seconds['tokenizer_and_data']:.0f} s to train "
        f"the tokenizer and encode the data, {seconds['training'] / 60:.1f} min of training |",
        f"| hardware | {hardware['cpu']}, {hardware['logical_cpus']} cores shared with other work (nice 19; "
        f"steps per thread count {run['steps_per_thread_count']}); torch {hardware['torch']}, "
        f"{hardware['precision']} |",
        f"| last loss | training {run['final_train_loss']:.3f}, held-out {run['final_held_out_loss']:.3f} "
        f"(bf16, first {settings['eval_windows']} held-out windows) |",
        "",
        "## Held-out evaluation",
        "",
        f"{len(held_out)} held-out library files, {tokens} tokens, fp32:",
        "",
        "| | loss (nats/token) | perplexity | bits/character |",
        "|---|---:|---:|---:|",
        *[f"| {r.name} | {r.loss:.3f} | {r.perplexity:.1f} | {r.bits_per_char:.2f} |" for r in rows],
        "",
        f"Next line at {n} non-blank line starts (seed {SEED}); greedy, to the end of the line (at most "
        f"{LINE_TOKENS} tokens); stripped lines compared:",
        "",
        "| | exact match | mean similarity (difflib) |",
        "|---|---:|---:|",
        f"| bundled model | {next_line.model_hits / n:.1%} | {next_line.model_similarity:.3f} |",
        f"| repeat the previous non-blank line | {next_line.baseline_hits / n:.1%} | "
        f"{next_line.baseline_similarity:.3f} |",
        "",
        f"Median time per line through the Engine: {next_line.median_ms:.0f} ms (fp32, {threads} threads).",
        "",
        "## Examples",
        "",
        f"The first three sampled positions: the {EXAMPLE_CONTEXT_LINES} lines before the cursor (the model "
        f"saw up to {config.n_positions} tokens), the model's greedy completion (its first {EXAMPLE_LINES} "
        f"lines, at most {EXAMPLE_TOKENS} tokens), and what the file says.",
        *examples,
        "",
        "### Obvious prompts (single line)",
        "",
        "A prompt that ends in a space ends in a lone-space token, which byte-level BPE almost never produces "
        "before a name (it joins the space to the word: ` sys`), so the model is off its training "
        "distribution there; CodeGen's GPT-2 tokenizer has the same property.",
        "",
        *[f"- `{prompt!r}` -> `{text!r}`" for prompt, text in obvious],
        "",
    ]
    return "\n".join(lines)


def parse_variant(spec: str) -> tuple[str, WeightFormat | None]:
    """ "int4:64:head" -> ("int4", WeightFormat("int4", group=64, head=True)); "bfloat16" -> ("bfloat16", None)."""
    dtype, *options = spec.split(":")
    if not options:
        return dtype, None
    group = next((int(o) for o in options if o.isdigit()), WeightFormat(dtype).group)
    return dtype, WeightFormat(dtype, group=group, head=True if "head" in options else None)


def compare_dtypes(
    folder: Path, specs: list[str], held_out: list[SourceFile], counts: list[int], positions: int
) -> str:
    """One row per dtype: held-out loss (and its change from the first row), next-line exact match, similarity.
    Every loss first (printed as it comes), then the next lines: the cheaper, finer measure is never waiting."""
    sample = sample_positions(held_out, positions)
    losses = {}
    for spec in specs:
        dtype, form = parse_variant(spec)
        rows, tokens = evaluate_loss(load_folder(folder, "cpu", dtype, weight_format=form), held_out, counts)
        losses[spec] = rows[0].loss
        print(f"{spec}: held-out loss {losses[spec]:.4f} over {tokens} tokens", flush=True)
    lines = [
        "| dtype | weights | held-out loss | vs first row | next-line exact match | mean similarity | median ms |",
        "|---|---|---|---|---|---|---|",
    ]
    first = losses[specs[0]]
    for spec in specs:
        dtype, form = parse_variant(spec)
        loaded = load_folder(folder, "cpu", dtype, weight_format=form)
        next_line = evaluate_next_line(Engine(loaded, cache_slots=1), sample)
        n = len(next_line.positions)
        weights = (form or WeightFormat(dtype)).describe() if dtype in ("int8", "int4") else dtype
        lines.append(
            f"| {spec} ({loaded.dtype_name}) | {weights} | {losses[spec]:.4f} | {losses[spec] - first:+.4f} | "
            f"{next_line.model_hits} of {n} | {next_line.model_similarity:.3f} | {next_line.median_ms:.0f} |"
        )
        print(lines[-1], flush=True)
    return f"Held-out loss over {tokens} tokens; next line at {len(sample)} sampled positions.\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=BUNDLED_MODEL_DIR)
    parser.add_argument("--positions", type=int, default=300, help="next-line positions to sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", help="comma-separated dtypes to compare (int4:G[:head] for int4 variants)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    run = json.loads((args.folder / RUN_FILE).read_text(encoding="utf-8"))
    if args.compare:
        _, _, held_out = split_files(source_files())
        specs = args.compare.split(",")
        print(compare_dtypes(args.folder, specs, held_out, run["train_unigram_counts"], args.positions))
        return
    loaded = load_folder(args.folder, "cpu", "float32")

    _, _, held_out = split_files(source_files())
    note = ""
    if [f.path for f in held_out] != run["data"]["held_out_files"]:
        note = (
            f"\n**Note:** this interpreter's held-out files differ from the training run's "
            f"({len(held_out)} vs {len(run['data']['held_out_files'])}); none of them was trained on.\n"
        )
        print(note, file=sys.stderr)

    rows, tokens = evaluate_loss(loaded, held_out, run["train_unigram_counts"])
    print(
        f"loss on {tokens} held-out tokens: model {rows[0].loss:.3f}, unigram {rows[1].loss:.3f} "
        f"({time.perf_counter() - started:.0f}s)",
        flush=True,
    )
    engine = Engine(loaded, cache_slots=1)
    next_line = evaluate_next_line(engine, sample_positions(held_out, args.positions))
    n = len(next_line.positions)
    print(
        f"next-line exact match at {n} positions: model {next_line.model_hits / n:.1%}, previous line "
        f"{next_line.baseline_hits / n:.1%} ({time.perf_counter() - started:.0f}s)",
        flush=True,
    )
    examples = example_sections(engine, next_line.positions[:3])
    obvious = [(p, complete(engine, 20_000 + i, p, SINGLE_LINE)[0]) for i, p in enumerate(OBVIOUS_PROMPTS)]

    report = render(loaded, run, rows, tokens, held_out, next_line, examples, obvious, note, args.threads)
    report += f"\nEvaluated in {time.perf_counter() - started:.0f} s.\n"
    (args.folder / REPORT_FILE).write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
