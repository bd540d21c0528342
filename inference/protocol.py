"""Messages between the language server and the inference worker process.

Plain dataclasses only: this module is imported by the server, which never imports torch.
Everything here must stay picklable (it crosses a multiprocessing pipe).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codegen_lsp.inference.rules.stop_rule import StopRule


DEFAULT_MODEL = "Salesforce/codegen-350M-mono"
# The names the dtype setting takes (inference/model/device.py maps them to torch types; the server cannot import it).
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
QUANTIZED_DTYPES = ("int8", "int4")  # weight formats: the activations and KV cache then use the CPU's best float type
DTYPE_CHOICES = ("auto", *FLOAT_DTYPES, *QUANTIZED_DTYPES)


@dataclass(frozen=True)
class ModelSpec:
    """Which model the worker loads, and where it runs. These defaults are the settings' defaults too."""

    model: str = DEFAULT_MODEL  # Hub id, local folder, or "bundled"
    revision: str | None = None
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # one of DTYPE_CHOICES
    cuda_graphs: bool = True  # capture the decode step on CUDA
    cache_slots: int = 8  # one KV cache per document, LRU: five documents typed in by turns must not evict each other
    cache_reuse: bool = True  # reuse the longest common token prefix across requests
    prompt_lookup: bool = True  # speculative drafts copied from the prompt, verified: greedy output unchanged


ALTERNATIVE_TEMPERATURE = 0.8  # the extra candidates of a greedy request are sampled at this temperature


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.95
    num_candidates: int = 1
    seed: int | None = None
    context_tokens: int = 1536  # prompt budget; capped by n_positions - max_new_tokens
    stop_rule: StopRule | None = None  # None: stop on EOS / max tokens only (no early stop)


@dataclass(frozen=True)
class CompletionRequest:
    request_id: int
    document: str  # cache key: the document URI
    prompt: str  # the text before the cursor (the server may already have cut it at a line start)
    options: GenerationOptions = field(default_factory=GenerationOptions)


@dataclass(frozen=True)
class PrefillRequest:
    """Fill the document's KV cache ahead of the first keystroke (the document was opened): nothing is generated.
    Idle work: the worker runs it only when no completion waits, and any request for the document supersedes it.
    Answered with a CompletionResult without candidates (its timings say what was computed)."""

    request_id: int
    document: str  # cache key: the document URI
    prompt: str  # the document's start (its prefix is the prefix of every prompt whose window starts at the top)
    context_tokens: int = GenerationOptions.context_tokens  # as many tokens as a completion's window holds


WorkerRequest = CompletionRequest | PrefillRequest  # what the worker queues and runs


class StopReason(str, enum.Enum):
    EOS = "eos"
    MAX_TOKENS = "max_tokens"
    STOP_RULE = "stop_rule"  # what follows could not survive post-processing
    CONTEXT_FULL = "context_full"  # n_positions reached
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Candidate:
    token_ids: tuple[int, ...]
    text: str  # decoded new tokens, special tokens skipped, before any truncation
    stop_reason: StopReason


@dataclass(frozen=True)
class Timings:
    tokens_reused: int = 0  # prompt tokens served from the KV cache
    tokens_computed: int = 0  # prompt tokens that went through a forward pass
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    forward_passes: int = 0  # model forward calls for this request (prefill + decode steps)
    tokenize_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class CompletionResult:
    request_id: int
    candidates: tuple[Candidate, ...]
    prompt_tokens: int  # tokens in the (windowed) prompt
    window_start_char: int  # where the prompt window starts inside request.prompt
    timings: Timings


@dataclass(frozen=True)
class CancelRequest:
    request_id: int


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Ping:
    """Are you there? The worker's receiver thread answers at once, whatever its compute thread is doing."""

    seq: int


@dataclass(frozen=True)
class Pong:
    seq: int
    steps: int  # decode steps the compute thread has taken since the worker started: moving means progress


# Worker -> server events (besides CompletionResult / RequestFailed).


class ErrorKind(str, enum.Enum):
    MODEL_NOT_FOUND = "model_not_found"
    OFFLINE = "offline"
    CORRUPT_FILE = "corrupt_file"
    OUT_OF_MEMORY = "out_of_memory"
    BAD_CONFIG = "bad_config"
    BAD_REQUEST = "bad_request"
    WORKER_DIED = "worker_died"
    TIMEOUT = "timeout"  # the worker made no progress on the request for too long
    INTERNAL = "internal"


@dataclass(frozen=True)
class RequestFailed:
    request_id: int
    kind: ErrorKind
    message: str  # for a human: names the file, key or setting at fault


@dataclass(frozen=True)
class RequestCancelled:
    request_id: int


@dataclass(frozen=True)
class LoadProgress:
    """A step of loading the model; `fraction` in [0, 1] when known (download bytes, load steps)."""

    message: str
    fraction: float | None = None


@dataclass(frozen=True)
class ModelReady:
    model: str  # what was asked for
    resolved: str  # the folder the files came from
    device: str
    dtype: str
    n_positions: int
    vocab_size: int
    load_ms: float
    warning: str | None = None  # e.g. "fell back to the bundled model because ..."


@dataclass(frozen=True)
class LoadFailed:
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class WorkerExited:
    """The worker process ended unexpectedly (crash, OOM kill, kill -9); the client restarts it with backoff."""

    message: str  # for the person: how it ended (exit code or signal) and when it restarts
    restarting: bool


WorkerEvent = (
    CompletionResult | RequestFailed | RequestCancelled | LoadProgress | ModelReady | LoadFailed | WorkerExited
)
