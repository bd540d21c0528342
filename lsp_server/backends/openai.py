"""The `openai` backend: completions from a server with the OpenAI-compatible `/v1/completions` API (vLLM first).

Same interface as the local worker (`backends.Backend`), so the pipeline does not know which one answers. What
stays here, in the editor's process: the tokenizer and the prompt window (the same `fit_window`, budget and
candidate samplings as the worker, `inference.rules`), so the prompt's token prefix stays put while the person
types and the server's prefix cache hits, and the stop rule, applied to the streamed text: the stream is closed
as soon as the rule decides, which makes vLLM abort the request. A superseded or cancelled request closes its
stream too.

Every remote call has one deadline over the whole answer (`backendTimeoutMs`) and a byte limit
(`openai_http`), and every answer's shape is checked (`openai_answers`). Each kind of failure has its behaviour
and one message for the person, said once until the server answers again:

- unreachable, timed out, a 5xx or an error event in the stream, an answer of the wrong shape: backoff 1 s
  doubling to 30 s, requests fail at once meanwhile;
- 429: wait as Retry-After says (else the backoff);
- 401/403 (a refused key), a redirect, a URL or key that cannot work: nothing is sent until the settings change;
- 404: the model is looked up again on the next request;
- 400 because the prompt does not fit the server's `--max-model-len`: the window shrinks to what the server
  says it takes, and the request is sent again; 400/422 to a token-id prompt: the window's text is sent instead.

The prompt goes as token ids (vLLM accepts them: no second tokenization, the exact window). Nothing here imports
torch; the API key is read from the environment variable the settings name, sent as a bearer token and never
logged; URLs are shown with their userinfo redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen_lsp.inference.protocol import (
    Candidate,
    CompletionRequest,
    CompletionResult,
    ErrorKind,
    GenerationOptions,
    PrefillRequest,
    StopReason,
    Timings,
)
from codegen_lsp.inference.rules.generation import (
    Sampling,
    candidate_samplings,
    prompt_budget,
    prompt_or_bos,
    unique_candidates,
)
from codegen_lsp.inference.rules.window import fit_window
from codegen_lsp.lsp_server.backends import BackendError, BackendRequestCancelled, BackendState, RemoteSpec
from codegen_lsp.lsp_server.backends.local import well_formed
from codegen_lsp.lsp_server.backends.openai_answers import model_names, stream_choices, token_list
from codegen_lsp.lsp_server.backends.openai_http import (
    RemoteError,
    RemoteFailure,
    RemoteHttp,
    check_api_key,
    check_url,
    redact,
)

__all__ = ["OpenAIBackend", "RemoteSpec", "load_model_files"]

log = logging.getLogger("codegen_lsp.remote")

RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
TOKENIZER_PROBE = "def fibonacci(n):\n    if n < 2:\n        return n\n"
MIN_SERVER_CONTEXT = 16  # a server that takes fewer tokens than this is not shrunk to any further
# What stops every request until the settings change.
_SETTINGS_FAILURES = (RemoteFailure.REFUSED_KEY, RemoteFailure.BAD_SETTINGS)
# vLLM: "This model's maximum context length is 256 tokens...", "... exceeds model's maximum context length (256)."
_MAX_LEN = re.compile(r"(?:maximum context length(?: is)?|max_model_len\D{0,3}|limit of)\s*\(?(\d+)", re.IGNORECASE)
SHRINKS = 3  # times one request's window may shrink to what the server says it takes


@dataclass(frozen=True)
class ModelFiles:
    """What the remote backend needs of the checkpoint: its tokenizer and context length (no weights)."""

    tokenizer: Any  # codegen_lsp.tokenizer.CodeGenTokenizer
    n_positions: int
    bos_token_id: int
    folder: Path


def load_model_files(model: str, revision: str | None) -> ModelFiles:
    """config.json and the tokenizer of `model` (Hub id, folder or `bundled`); from the Hub only those files.
    Blocking: run it in a thread."""
    from codegen_lsp.inference.checkpoint.config import CodeGenConfig
    from codegen_lsp.inference.checkpoint.hub import resolve_model_folder
    from codegen_lsp.inference.errors import ModelLoadError
    from codegen_lsp.tokenizer import CodeGenTokenizer

    try:
        folder = resolve_model_folder(model, revision, weights=False)
        config = CodeGenConfig.from_file(folder / "config.json")
    except ModelLoadError as error:  # offline, not found, gated, a file outside the folder, a bad config
        raise BackendError(error.kind, error.message) from None
    try:
        tokenizer = CodeGenTokenizer.from_folder(folder)
    except Exception as error:  # noqa: BLE001 - a broken folder is a message, not a crash
        raise BackendError(ErrorKind.BAD_CONFIG, f"{model}: {error}") from None
    bos = config.bos_token_id if config.bos_token_id is not None else 0
    return ModelFiles(tokenizer, config.n_positions, bos, folder)


@dataclass(frozen=True)
class _Prompt:
    ids: list[int]
    text: str  # the window's text: sent instead of the ids to a server that refuses them
    window_start: int
    max_tokens: int


class OpenAIBackend:
    def __init__(
        self,
        spec: RemoteSpec,
        files: ModelFiles,
        on_status: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.files = files
        self.state = BackendState.LOADING
        self.served_model: str | None = None
        self.url = redact(spec.url.rstrip("/"))  # what messages and logs show
        self._on_status = on_status or (lambda kind, message: None)
        self._http: RemoteHttp | None = None
        self._connecting: asyncio.Future | None = None  # one lookup of the model at a time, shared
        self._send_text = False  # the server refused token-id prompts
        self._server_context: int | None = None  # the server's --max-model-len, once it refused a longer request
        self._failures = 0
        self._down_until = 0.0
        self._said: set[RemoteFailure] = set()  # the messages said since the server last answered
        self._running: dict[int, asyncio.Task] = {}
        self._cancelled: set[int] = set()

    @property
    def _deadline_s(self) -> float:
        return self.spec.timeout_ms / 1000

    # -- life ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the settings, then find the served model and check that it is ours (same tokenizer) within
        the deadline; when the server is not up yet, the next request after the backoff tries again."""
        problem = check_url(self.spec.url)
        key = None
        if problem is None and self.spec.api_key_env:
            key = os.environ.get(self.spec.api_key_env)
            if not key:
                problem = f"the environment variable {self.spec.api_key_env} (backendApiKeyEnv) is not set"
            else:
                problem = check_api_key(key, self.spec.api_key_env)
        if problem is not None:
            self._fail(problem)
            return
        self._http = RemoteHttp(self.spec.url, key, self._deadline_s)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
        with contextlib.suppress(RemoteError):  # said and handled by _connected
            await self._connected()

    async def stop(self) -> None:
        self.state = BackendState.STOPPED
        if self._connecting is not None:
            self._connecting.cancel()
        for task in list(self._running.values()):
            task.cancel()
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def _connected(self) -> None:
        """Wait for the model lookup (started now, or joined when one runs); raises RemoteError."""
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect_in_time())
        await asyncio.shield(self._connecting)

    async def _connect_in_time(self) -> None:
        try:
            await asyncio.wait_for(self._connect(), self._deadline_s)
        except asyncio.TimeoutError:
            error = RemoteError(RemoteFailure.TIMEOUT, self._no_answer_in_time())
            self._failed(error)
            raise error from None
        except RemoteError as error:
            self._failed(error)
            raise
        except Exception as error:  # noqa: BLE001 - whatever a server made happen: a message, never a traceback
            raise self._unexpected(error) from None

    async def _connect(self) -> None:
        assert self._http is not None
        names = model_names(await self._http.get_json("models"), self.url)
        wanted = self.spec.model
        if wanted is None:
            if len(names) != 1:
                raise RemoteError(
                    RemoteFailure.BAD_SETTINGS,
                    f"the server at {self.url} serves {len(names)} models ({_listed(names)}); name one: backendModel",
                )
            wanted = names[0]
        elif wanted not in names:
            raise RemoteError(
                RemoteFailure.BAD_SETTINGS,
                f"the server at {self.url} does not serve {wanted!r} (it serves: {_listed(names)})",
            )
        self.served_model = wanted
        await self._check_tokenizer()
        self.state = BackendState.READY
        log.info("remote backend: %s at %s", wanted, self.url)

    async def _check_tokenizer(self) -> None:
        """The server must tokenize as the `model` setting's tokenizer does (else the windows, the token-id
        prompts and the stop rule would be wrong). vLLM has /tokenize; other servers are taken on trust."""
        assert self._http is not None
        ours = self.files.tokenizer.encode(TOKENIZER_PROBE)
        root = self.spec.url.rstrip("/").removesuffix("/v1")
        payload = {"model": self.served_model, "prompt": TOKENIZER_PROBE, "add_special_tokens": False}
        try:
            theirs = token_list(await self._http.post_json(f"{root}/tokenize", payload))
        except RemoteError as error:
            if error.failure in (RemoteFailure.TIMEOUT, *_SETTINGS_FAILURES):
                raise
            log.info("remote backend: tokenizer not checked (%s)", error.message)
            return
        if theirs is None:
            log.info("remote backend: /tokenize answered another shape; tokenizer not checked")
        elif theirs != ours:
            raise RemoteError(
                RemoteFailure.BAD_SETTINGS,
                f"the server's model {self.served_model!r} does not tokenize like the model setting's "
                f"tokenizer ({self.files.folder}): export the same checkpoint with `codegen-lsp export`",
            )

    # -- requests ------------------------------------------------------------------------------------------

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        if self.state is BackendState.FAILED:
            raise BackendError(ErrorKind.BAD_CONFIG, "the remote backend is not usable (see the message)")
        if self.state is BackendState.STOPPED or self._http is None:
            raise BackendError(ErrorKind.INTERNAL, "the remote backend is stopped")
        now = time.monotonic()
        if now < self._down_until:
            raise BackendError(
                ErrorKind.OFFLINE,
                f"waiting for the completion server (see the message); next try in {self._down_until - now:.0f} s",
            )
        task = asyncio.current_task()
        assert task is not None
        self._running[request.request_id] = task
        try:
            result = await asyncio.wait_for(self._connect_and_generate(request), self._deadline_s)
        except asyncio.CancelledError:
            if request.request_id in self._cancelled:
                raise BackendRequestCancelled() from None
            raise
        except asyncio.TimeoutError:
            error = RemoteError(RemoteFailure.TIMEOUT, self._no_answer_in_time())
            if self._connecting is None or self._connecting.done():  # else the lookup says it, once
                self._failed(error)
            raise error from None
        except RemoteError as error:
            self._failed(error)
            raise
        except BackendError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever a server made happen: a message, never a traceback
            raise self._unexpected(error) from None
        finally:
            self._running.pop(request.request_id, None)
            self._cancelled.discard(request.request_id)
        self._came_back()
        return result

    async def prefill(self, request: PrefillRequest) -> None:
        """Nothing to do ahead of the first keystroke: the server keeps its own prefix cache."""
        return None

    def cancel(self, request_id: int) -> None:
        task = self._running.get(request_id)
        if task is not None:
            self._cancelled.add(request_id)
            task.cancel()  # leaving the stream closes the connection: vLLM aborts the request

    async def _connect_and_generate(self, request: CompletionRequest) -> CompletionResult:
        if self.state is not BackendState.READY:
            try:
                await self._connected()
            except RemoteError as error:  # said and handled by _connect_in_time: not again in generate
                raise BackendError(error.kind, error.message) from None
        return await self._generate(request)

    async def _generate(self, request: CompletionRequest) -> CompletionResult:
        """One request; sent again (a loop, not a recursion) when the server refused a token-id prompt (then as
        text, once) or a prompt longer than its --max-model-len (then with a shorter window, up to SHRINKS times)."""
        t0 = time.perf_counter()
        request = well_formed(request)  # lone surrogates (valid JSON) become U+FFFD: the tokenizer refuses them
        shrinks, switched = 0, False
        while True:
            prompt = self._prompt(request)
            t1 = time.perf_counter()
            try:
                candidates = await self._candidates(prompt, request.options)
                break
            except RemoteError as error:
                if error.failure is RemoteFailure.PROMPT_TOO_LONG and shrinks < SHRINKS:
                    if self._learn_context(error, prompt):
                        shrinks += 1
                        continue
                if _refuses_token_ids(error) and not self._send_text and not switched:
                    log.info("remote backend: token-id prompt refused (%s); sending text from now on", error.message)
                    self._send_text = switched = True
                    continue
                raise
        t2 = time.perf_counter()
        timings = Timings(
            tokens_computed=len(prompt.ids),
            tokenize_ms=(t1 - t0) * 1000,
            decode_ms=(t2 - t1) * 1000,
            total_ms=(t2 - t0) * 1000,
        )
        return CompletionResult(
            request.request_id, unique_candidates(candidates), len(prompt.ids), prompt.window_start, timings
        )

    def _prompt(self, request: CompletionRequest) -> _Prompt:
        options = request.options
        n_positions = min(self.files.n_positions, self._server_context or self.files.n_positions)
        budget = prompt_budget(options.context_tokens, options.max_new_tokens, n_positions)
        ids, start = fit_window(request.prompt, self.files.tokenizer.encode_with_offsets, budget)
        ids = prompt_or_bos(ids, self.files.bos_token_id)
        max_tokens = max(1, min(options.max_new_tokens, n_positions - len(ids)))
        return _Prompt(ids, request.prompt[start:], start, max_tokens)

    def _learn_context(self, error: RemoteError, prompt: _Prompt) -> bool:
        """The server takes fewer tokens than the model's n_positions (`--max-model-len`): from now on the window
        fits what its message says, else half of what was sent. False when it cannot shrink further."""
        asked = len(prompt.ids) + prompt.max_tokens
        said = _MAX_LEN.search(error.message)
        context = int(said.group(1)) if said and int(said.group(1)) < asked else asked // 2
        if context < MIN_SERVER_CONTEXT:
            return False
        if self._server_context != context:
            log.info("remote backend: the server takes %d tokens per request; the window shrinks to fit", context)
        self._server_context = context
        return True

    async def _candidates(self, prompt: _Prompt, options: GenerationOptions) -> list[Candidate]:
        """One stream per group of alike samplings (the primary greedy alone, seeded ones each alone), run at once,
        in the engine's candidate order."""
        groups: list[tuple[Sampling, int]] = []
        for sampling in candidate_samplings(options):
            if groups and groups[-1][0] == sampling and sampling.seed is None:
                groups[-1] = (sampling, groups[-1][1] + 1)
            else:
                groups.append((sampling, 1))
        streams = [self._stream(prompt, sampling, n, options) for sampling, n in groups]
        results = await asyncio.gather(*streams)
        return [candidate for result in results for candidate in result]

    async def _stream(self, prompt: _Prompt, sampling: Sampling, n: int, options: GenerationOptions) -> list[Candidate]:
        assert self._http is not None
        payload: dict[str, Any] = {
            "model": self.served_model,
            "max_tokens": prompt.max_tokens,
            "temperature": sampling.temperature,
            "top_p": options.top_p,
            "n": n,
            "stream": True,
        }
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        if self._send_text:
            payload["prompt"] = prompt.text
        else:
            payload.update(prompt=prompt.ids, return_token_ids=True)
        texts = [""] * n
        token_ids: list[list[int]] = [[] for _ in range(n)]
        reasons: list[StopReason | None] = [None] * n
        rule = options.stop_rule
        where = f"{self.url}/completions"
        async with contextlib.aclosing(self._http.events("completions", payload)) as events:
            async for event in events:
                for choice in stream_choices(event, where):
                    if not 0 <= choice.index < n or reasons[choice.index] is not None:
                        continue
                    texts[choice.index] += choice.text
                    token_ids[choice.index].extend(choice.token_ids)
                    if rule is not None and rule.cut(texts[choice.index]) is not None:
                        reasons[choice.index] = StopReason.STOP_RULE
                    elif choice.finish_reason is not None:
                        reasons[choice.index] = _stop_reason(choice.finish_reason)
                if all(reason is not None for reason in reasons):
                    break  # leaving the block closes the stream: the server aborts what is left
        return [
            Candidate(tuple(ids), text, reason or StopReason.MAX_TOKENS)
            for ids, text, reason in zip(token_ids, texts, reasons, strict=True)
        ]

    # -- status --------------------------------------------------------------------------------------------

    def _no_answer_in_time(self) -> str:
        return (
            f"the completion server at {self.url} sent no whole answer in {self.spec.timeout_ms} ms (backendTimeoutMs)"
        )

    def _unexpected(self, error: Exception) -> RemoteError:
        log.debug("remote backend: unexpected failure", exc_info=error)
        failure = RemoteError(
            RemoteFailure.BAD_ANSWER,
            f"the completion server at {self.url} failed unexpectedly ({type(error).__name__})",
        )
        self._failed(failure)
        return failure

    def _failed(self, error: RemoteError) -> None:
        """What a failure means for the next requests, and one message per kind until the server answers."""
        if error.failure in _SETTINGS_FAILURES or (error.failure is RemoteFailure.BAD_ANSWER and error.status):
            self._fail(error.message)  # a refused key, a redirect, a URL, key or model that cannot work
            return
        if self.state is BackendState.FAILED:
            return
        if error.failure is RemoteFailure.NOT_FOUND:
            self.state = BackendState.LOADING  # look the model up again on the next request
        if error.failure is RemoteFailure.RATE_LIMITED:
            wait = error.retry_after_s if error.retry_after_s is not None else self._next_delay()
            self._down_until = time.monotonic() + wait
            self._say(error.failure, f"{error.message}; waiting {wait:.0f} s as the server asks")
            return
        delay = self._next_delay()
        if error.retry_after_s is not None:  # a 503 may say how long, too
            delay = max(delay, error.retry_after_s)
        self._down_until = time.monotonic() + delay
        self._say(error.failure, f"{error.message}; completions resume when it answers again")
        log.warning("remote backend: %s; next try in %.0f s", error.message, delay)

    def _next_delay(self) -> float:
        delay = RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1
        return delay

    def _say(self, failure: RemoteFailure, message: str) -> None:
        if failure not in self._said:
            self._said.add(failure)
            self._on_status("down", message)

    def _fail(self, message: str) -> None:
        """Not a passing outage: nothing is sent until the settings change. Said once, however many requests
        raced the start."""
        if self.state is BackendState.FAILED:
            return
        self.state = BackendState.FAILED
        log.error("remote backend: %s", message)
        self._on_status("failed", message)

    def _came_back(self) -> None:
        if self._failures or self._said:
            self._failures = 0
            self._down_until = 0.0
            self._said.clear()
            self._on_status("up", f"the completion server at {self.url} answers again")


def _listed(names: list[str], most: int = 20, longest: int = 80) -> str:
    """The served models' names for a message: a few, each cut short (a server chooses them)."""
    shown = [name if len(name) <= longest else name[:longest] + "..." for name in names[:most]]
    return ", ".join(shown) + (", ..." if len(names) > most else "")


def _refuses_token_ids(error: RemoteError) -> bool:
    return error.failure is RemoteFailure.REFUSED_REQUEST and error.status in (400, 422)


def _stop_reason(finish_reason: str) -> StopReason:
    if finish_reason == "length":
        return StopReason.MAX_TOKENS
    return StopReason.EOS
