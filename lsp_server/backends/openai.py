"""The `openai` backend: completions from a server with the OpenAI-compatible `/v1/completions` API (vLLM first).

Same interface as the local worker (`backend.Backend`), so the pipeline does not know which one answers. What
stays here, in the editor's process: the tokenizer and the prompt window (the same `fit_window` as the worker,
so the prompt's token prefix stays put while the person types and the server's prefix cache hits), and the stop
rule, applied to the streamed text: the stream is closed as soon as the rule decides, which makes vLLM abort the
request. A superseded or cancelled request closes its stream too.

The prompt goes as token ids (vLLM accepts them: no second tokenization, the exact window); a server that
refuses them gets the window's text instead, from then on. Failures (down, refusing, slow, 4xx/5xx, a broken
stream) answer the request with an error the completer turns into no items; one message tells the person when
the server goes away and when it is back, and while it is away requests fail at once until the next retry
(backoff 1 s doubling to 30 s). Nothing here imports torch; the API key is read from the environment variable
the settings name, sent as a bearer token and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen_lsp.inference.protocol import (
    ALTERNATIVE_TEMPERATURE,
    Candidate,
    CompletionRequest,
    CompletionResult,
    ErrorKind,
    PrefillRequest,
    StopReason,
    Timings,
)
from codegen_lsp.inference.rules.window import fit_window
from codegen_lsp.lsp_server.backends import BackendState, RemoteSpec
from codegen_lsp.lsp_server.backends.local import EngineError, RequestCancelledError, well_formed

__all__ = ["OpenAIBackend", "RemoteSpec", "load_model_files"]

log = logging.getLogger("codegen_lsp.remote")

RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
TOKENIZER_PROBE = "def fibonacci(n):\n    if n < 2:\n        return n\n"


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
        raise EngineError(error.kind, error.message) from None
    try:
        tokenizer = CodeGenTokenizer.from_folder(folder)
    except Exception as error:  # noqa: BLE001 - a broken folder is a message, not a crash
        raise EngineError(ErrorKind.BAD_CONFIG, f"{model}: {error}") from None
    bos = config.bos_token_id if config.bos_token_id is not None else 0
    return ModelFiles(tokenizer, config.n_positions, bos, folder)


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
        self._on_status = on_status or (lambda kind, message: None)
        self._client: Any = None  # httpx.AsyncClient, imported when the backend starts
        self._send_text = False  # the server refused token-id prompts
        self._failures = 0
        self._down_until = 0.0
        self._running: dict[int, asyncio.Task] = {}
        self._cancelled: set[int] = set()

    # -- life ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Find the served model and check that it is ours (same tokenizer); retried on the first request
        when the server is not up yet."""
        import httpx

        headers = {}
        key_name = self.spec.api_key_env
        if key_name:
            key = os.environ.get(key_name)
            if not key:
                self._fail(f"the environment variable {key_name} (backendApiKeyEnv) is not set")
                return
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(self.spec.timeout_ms / 1000)
        self._client = httpx.AsyncClient(base_url=self.spec.url.rstrip("/") + "/", headers=headers, timeout=timeout)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
        try:
            await self._connect()
        except EngineError as error:
            if self.state is not BackendState.FAILED:
                self._went_down(error.message)

    async def stop(self) -> None:
        self.state = BackendState.STOPPED
        for task in list(self._running.values()):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _connect(self) -> None:
        models = await self._get_json("models")
        names = [m.get("id") for m in models.get("data", []) if isinstance(m, dict)]
        wanted = self.spec.model
        if wanted is None:
            if len(names) != 1:
                self._fail(
                    f"the server at {self.spec.url} serves {len(names)} models ({', '.join(map(str, names))}): "
                    "name one with backendModel"
                )
                raise EngineError(ErrorKind.BAD_CONFIG, "no model chosen")
            wanted = names[0]
        elif wanted not in names:
            served = ", ".join(map(str, names))
            self._fail(f"the server at {self.spec.url} does not serve {wanted!r} (it serves: {served})")
            raise EngineError(ErrorKind.MODEL_NOT_FOUND, "unknown model")
        self.served_model = wanted
        await self._check_tokenizer()
        if self.state is not BackendState.FAILED:
            self.state = BackendState.READY
            log.info("remote backend: %s at %s", wanted, self.spec.url)

    async def _check_tokenizer(self) -> None:
        """The server must tokenize as the `model` setting's tokenizer does (else the windows, the token-id
        prompts and the stop rule would be wrong). vLLM has /tokenize; other servers are taken on trust."""
        ours = self.files.tokenizer.encode(TOKENIZER_PROBE)
        root = self.spec.url.rstrip("/").removesuffix("/v1")
        try:
            response = await self._client.post(
                f"{root}/tokenize",
                json={"model": self.served_model, "prompt": TOKENIZER_PROBE, "add_special_tokens": False},
            )
        except Exception as error:  # noqa: BLE001 - no such endpoint on this server
            log.info("remote backend: no /tokenize (%s); tokenizer not checked", type(error).__name__)
            return
        if response.status_code != 200:
            log.info("remote backend: /tokenize answered %d; tokenizer not checked", response.status_code)
            return
        theirs = response.json().get("tokens")
        if theirs != ours:
            self._fail(
                f"the server's model {self.served_model!r} does not tokenize like the model setting's "
                f"tokenizer ({self.files.folder}): export the same checkpoint with `codegen-lsp export`"
            )

    # -- requests ------------------------------------------------------------------------------------------

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        if self.state is BackendState.FAILED:
            raise EngineError(ErrorKind.BAD_CONFIG, "the remote backend is not usable (see the message)")
        if self.state is BackendState.STOPPED or self._client is None:
            raise EngineError(ErrorKind.INTERNAL, "the remote backend is stopped")
        now = time.monotonic()
        if now < self._down_until:
            raise EngineError(
                ErrorKind.WORKER_DIED,
                f"the completion server is unreachable; retrying in {self._down_until - now:.0f} s",
            )
        task = asyncio.current_task()
        assert task is not None
        self._running[request.request_id] = task
        try:
            if self.state is not BackendState.READY:
                await self._connect()
            result = await asyncio.wait_for(self._generate(request), self.spec.timeout_ms / 1000)
        except asyncio.CancelledError:
            if request.request_id in self._cancelled:
                raise RequestCancelledError() from None
            raise
        except asyncio.TimeoutError:
            self._went_down(f"no answer within {self.spec.timeout_ms} ms (backendTimeoutMs)")
            raise EngineError(ErrorKind.WORKER_DIED, "the completion server timed out") from None
        except EngineError as error:
            if error.kind is ErrorKind.WORKER_DIED:
                self._went_down(error.message)
            raise
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
            task.cancel()  # leaving `async with stream` closes the connection: vLLM aborts the request

    async def _generate(self, request: CompletionRequest) -> CompletionResult:
        t0 = time.perf_counter()
        request = well_formed(request)  # lone surrogates (valid JSON) become U+FFFD: the tokenizer refuses them
        options = request.options
        n_positions = self.files.n_positions
        budget = max(1, min(options.context_tokens, n_positions - options.max_new_tokens))
        prompt_ids, window_start = fit_window(request.prompt, self.files.tokenizer.encode_with_offsets, budget)
        if not prompt_ids:  # an empty document: start from <|endoftext|>, as the local engine does
            prompt_ids = [self.files.bos_token_id]
        max_tokens = max(1, min(options.max_new_tokens, n_positions - len(prompt_ids)))
        t1 = time.perf_counter()

        n = max(1, options.num_candidates)
        body = {"max_tokens": max_tokens, "temperature": options.temperature, "top_p": options.top_p}
        if options.seed is not None:
            body["seed"] = options.seed
        if n > 1 and options.temperature <= 0:
            # The first candidate greedy, the others sampled: two requests, as the engine decodes them.
            extra = {**body, "temperature": ALTERNATIVE_TEMPERATURE, "n": n - 1}
            if options.seed is not None:
                extra["seed"] = options.seed + 1
            results = await asyncio.gather(
                self._stream(prompt_ids, request.prompt[window_start:], {**body, "n": 1}, options),
                self._stream(prompt_ids, request.prompt[window_start:], extra, options),
            )
            candidates = results[0] + results[1]
        else:
            candidates = await self._stream(prompt_ids, request.prompt[window_start:], {**body, "n": n}, options)
        t2 = time.perf_counter()
        unique: dict[str, Candidate] = {}
        for candidate in candidates:
            unique.setdefault(candidate.text, candidate)
        timings = Timings(
            tokens_computed=len(prompt_ids),
            tokenize_ms=(t1 - t0) * 1000,
            decode_ms=(t2 - t1) * 1000,
            total_ms=(t2 - t0) * 1000,
        )
        return CompletionResult(request.request_id, tuple(unique.values()), len(prompt_ids), window_start, timings)

    async def _stream(self, prompt_ids: list[int], prompt_text: str, body: dict[str, Any], options) -> list[Candidate]:
        import httpx

        n = body["n"]
        texts = [""] * n
        token_ids: list[list[int]] = [[] for _ in range(n)]
        reasons: list[StopReason | None] = [None] * n
        rule = options.stop_rule
        payload = {**body, "model": self.served_model, "stream": True}
        if self._send_text:
            payload["prompt"] = prompt_text
        else:
            payload.update(prompt=prompt_ids, return_token_ids=True)
        try:
            async with self._client.stream("POST", "completions", json=payload) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")[:300]
                    if response.status_code in (400, 422) and not self._send_text:
                        log.info("remote backend: token-id prompt refused (%s); sending text from now on", detail)
                        self._send_text = True
                        return await self._stream(prompt_ids, prompt_text, body, options)
                    kind = ErrorKind.WORKER_DIED if response.status_code >= 500 else ErrorKind.BAD_REQUEST
                    raise EngineError(kind, f"the completion server answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    for choice in json.loads(data).get("choices", []):
                        index = choice.get("index", 0)
                        if not 0 <= index < n or reasons[index] is not None:
                            continue
                        texts[index] += choice.get("text") or ""
                        token_ids[index].extend(choice.get("token_ids") or [])
                        if rule is not None and rule.cut(texts[index]) is not None:
                            reasons[index] = StopReason.STOP_RULE
                        elif choice.get("finish_reason") is not None:
                            reasons[index] = _stop_reason(choice["finish_reason"])
                    if all(reason is not None for reason in reasons):
                        break  # leaving the block closes the stream: the server aborts what is left
        except httpx.HTTPError as error:
            raise EngineError(
                ErrorKind.WORKER_DIED,
                f"the completion server at {self.spec.url} failed: {type(error).__name__}: {error}",
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise EngineError(ErrorKind.INTERNAL, f"the completion server sent something unreadable: {error}") from None
        return [
            Candidate(tuple(ids), text, reason or StopReason.MAX_TOKENS)
            for ids, text, reason in zip(token_ids, texts, reasons, strict=True)
        ]

    async def _get_json(self, path: str) -> dict:
        import httpx

        try:
            response = await asyncio.wait_for(self._client.get(path), self.spec.timeout_ms / 1000)
        except (httpx.HTTPError, asyncio.TimeoutError) as error:
            raise EngineError(
                ErrorKind.WORKER_DIED,
                f"the completion server at {self.spec.url} is unreachable ({type(error).__name__})",
            ) from None
        if response.status_code == 401 or response.status_code == 403:
            self._fail(f"the completion server at {self.spec.url} refused the API key ({response.status_code})")
            raise EngineError(ErrorKind.BAD_CONFIG, "refused")
        if response.status_code != 200:
            raise EngineError(
                ErrorKind.WORKER_DIED, f"the completion server answered {response.status_code} to /{path}"
            )
        try:
            return response.json()
        except ValueError:
            raise EngineError(ErrorKind.WORKER_DIED, f"{self.spec.url}/{path} did not answer JSON") from None

    # -- status --------------------------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        """Not a passing outage: nothing to retry until the settings change."""
        self.state = BackendState.FAILED
        self._on_status("failed", message)

    def _went_down(self, message: str) -> None:
        delay = RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1
        self._down_until = time.monotonic() + delay
        if self._failures == 1:
            self._on_status("down", f"{message}; completions resume when it answers again")
        log.warning("remote backend: %s; next try in %.0f s", message, delay)

    def _came_back(self) -> None:
        if self._failures:
            self._failures = 0
            self._down_until = 0.0
            self._on_status("up", f"the completion server at {self.spec.url} answers again")


def _stop_reason(finish_reason: str) -> StopReason:
    if finish_reason == "length":
        return StopReason.MAX_TOKENS
    return StopReason.EOS
