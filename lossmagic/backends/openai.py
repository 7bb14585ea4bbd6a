"""A backend for OpenAI-compatible chat completion servers.

vLLM, llama.cpp's server, Ollama and ``transformers serve`` all expose
``POST /v1/chat/completions``. This backend talks to them with httpx and streams every
completion, so the progress display counts tokens as they arrive and the read timeout
applies between chunks rather than to the whole generation.

Settings come from arguments or the environment:

- ``LOSSMAGIC_BASE_URL`` or ``OPENAI_BASE_URL``: the server, for example
  ``http://127.0.0.1:8000/v1`` (a URL without a path gets ``/v1``).
- ``OPENAI_API_KEY``: sent as a bearer token when set.
- ``LOSSMAGIC_SERVER_TIMEOUT``: seconds to wait for the next chunk of a response (120).
- ``LOSSMAGIC_SERVER_RETRIES``: retries after a connection error, HTTP 429 or 5xx (2).
- ``LOSSMAGIC_SERVER_CONCURRENCY``: requests in flight at once, over all threads (4).

The backend is thread-safe: one instance can serve several runs in parallel threads, and
the concurrency bound applies to all of them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from lossmagic.backends.base import (
    Backend,
    ChatRequest,
    Completion,
    TokenCallback,
    cut_at_stop,
    render_messages,
)
from lossmagic.exceptions import ConfigurationError, ServerError
from lossmagic.progress import Event, ProgressCallback, emit

__all__ = ["OpenAIBackend", "ServerSettings", "resolve_base_url"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Request fields that some servers reject. After a 400 or 422 response that names one,
# the backend leaves that field out of this and every later request.
_OPTIONAL_FIELDS = ("seed", "stream_options", "top_p")

_MAX_RETRY_AFTER = 10.0
_DETAIL_LENGTH = 200


def resolve_base_url(base_url: str | None = None) -> str | None:
    """Return the server URL from the argument, ``LOSSMAGIC_BASE_URL`` or ``OPENAI_BASE_URL``."""
    return (
        base_url or os.environ.get("LOSSMAGIC_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    )


def _normalize_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"invalid server URL {url!r}.",
            "Pass --base-url as http://HOST:PORT/v1, for example http://127.0.0.1:8000/v1.",
        )
    path = parts.path.rstrip("/") or "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"invalid {name}={raw!r}.", f"Set it to a number of at least {minimum:g}."
        )
    return value


@dataclass(frozen=True)
class ServerSettings:
    """Timeouts, retries and the concurrency bound of the requests to one server."""

    connect_timeout: float = 5.0
    """Seconds to wait for the TCP connection."""
    read_timeout: float = 120.0
    """Seconds to wait for the next chunk of a response."""
    retries: int = 2
    """Retries after a connection error, HTTP 429 or 5xx; a read timeout is not retried."""
    backoff: float = 0.25
    """Seconds before the first retry; each later retry waits twice as long."""
    concurrency: int = 4
    """Requests in flight at once, over all threads that share the backend."""

    @classmethod
    def from_env(cls) -> ServerSettings:
        """Read the settings that the ``LOSSMAGIC_SERVER_*`` variables override."""
        default = cls()
        return cls(
            read_timeout=_env_number("LOSSMAGIC_SERVER_TIMEOUT", default.read_timeout, 0.1),
            retries=int(_env_number("LOSSMAGIC_SERVER_RETRIES", default.retries, 0)),
            concurrency=int(
                _env_number("LOSSMAGIC_SERVER_CONCURRENCY", default.concurrency, 1)
            ),
        )


class _RetryableError(Exception):
    """A failure that another attempt may not repeat: a lost connection, HTTP 429 or 5xx."""

    def __init__(
        self, reason: str, detail: str, retry_after: float | None = None, lost: bool = True
    ) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.lost = lost
        """Whether the connection failed, rather than the server returning an error status."""


class _UnsupportedFieldError(Exception):
    """The server rejected a field of the request that can be left out."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class _Aborted(Exception):
    """Another sample of the same request failed, so this one stopped early."""


def _response_detail(response: httpx.Response) -> str:
    """Return the server's error message from an OpenAI, FastAPI or plain-text body."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            body = error["message"]
        elif isinstance(error, str):
            body = error
        elif "detail" in body:
            body = body["detail"]
        elif "message" in body:
            body = body["message"]
    text = body if isinstance(body, str) else json.dumps(body)
    lines = text.strip().splitlines()
    first = lines[0] if lines else response.reason_phrase
    return first[:_DETAIL_LENGTH].rstrip(".")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), _MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


class OpenAIBackend(Backend):
    """Send chat completions to an OpenAI-compatible server; the model name is the server's.

    Without a model name, ``prepare`` picks the server's only model and fails when it
    serves several. ``complete`` sends the ``request.n`` samples as concurrent requests.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        url = resolve_base_url(base_url)
        if not url:
            raise ConfigurationError(
                "the openai backend needs a server URL.",
                "Pass --base-url http://HOST:PORT/v1 or set LOSSMAGIC_BASE_URL.",
            )
        self.base_url = _normalize_url(url)
        self.settings = settings or ServerSettings.from_env()
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._model_name = model or ""
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.settings.concurrency)
        self._client: httpx.Client | None = None
        self._dropped_fields: set[str] = set()
        self._prepared = False

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def supports_prefill(self) -> bool:
        # NOTE: vLLM can continue a final assistant message (continue_final_message),
        # but transformers serve 5.x rejects that field and other servers may ignore it
        # silently, so prompts for servers always ask for the whole function.
        return False

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(
                        self.settings.read_timeout, connect=self.settings.connect_timeout
                    ),
                    limits=httpx.Limits(max_connections=self.settings.concurrency),
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._prepared = False

    def _error(self, problem: str, fix: str = "") -> ServerError:
        return ServerError(self.base_url, problem, fix)

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it succeeds, retrying ``_RetryableError`` with backoff."""
        tries = self.settings.retries + 1
        for index in range(tries):
            try:
                return attempt()
            except _RetryableError as exc:
                if index == tries - 1:
                    fix = (
                        "Start the server, or point --base-url (or LOSSMAGIC_BASE_URL) "
                        "at a running one."
                        if exc.lost
                        else "The server is overloaded or failing: check its log, or "
                        "lower LOSSMAGIC_SERVER_CONCURRENCY."
                    )
                    attempts = f"{tries} attempts" if tries > 1 else "1 attempt"
                    raise self._error(
                        f"{exc.reason} after {attempts} ({exc.detail}).", fix
                    ) from None
                delay = exc.retry_after or self.settings.backoff * 2**index
                delay *= 1 + random.random() / 4
                logger.info(
                    "request to %s failed: %s (%s); retry %d of %d in %.2f s",
                    self.base_url,
                    exc.reason,
                    exc.detail,
                    index + 1,
                    tries - 1,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; return the open, streaming response with a 2xx or accepted status."""
        client = self._http()
        request = client.build_request(method, path, json=body)
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectError as exc:
            raise _RetryableError("cannot connect", _short(exc)) from None
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc) from None
        except httpx.TransportError as exc:
            raise _RetryableError("connection failed", _short(exc)) from None

        if response.is_success or response.status_code in accept:
            return response
        try:
            response.read()
        except httpx.TransportError as exc:
            raise _RetryableError("connection failed", _short(exc)) from None
        finally:
            response.close()
        raise self._status_error(response, body)

    def _timeout_error(self, exc: httpx.TimeoutException) -> ServerError:
        if isinstance(exc, httpx.ConnectTimeout):
            return self._error(
                f"timed out connecting after {self.settings.connect_timeout:g} s.",
                "Check that --base-url points at a running server.",
            )
        return self._error(
            f"timed out: no response within {self.settings.read_timeout:g} s.",
            "Set LOSSMAGIC_SERVER_TIMEOUT to a larger number of seconds, "
            "or check the server's load.",
        )

    def _status_error(self, response: httpx.Response, body: dict[str, Any] | None) -> Exception:
        status = response.status_code
        detail = _response_detail(response)
        where = response.request.url.path

        if status in (400, 422) and body is not None:
            for name in _OPTIONAL_FIELDS:
                if name in body and name in detail:
                    return _UnsupportedFieldError(name)
        if status == 429 or status >= 500:
            return _RetryableError(
                f"HTTP {status} from {where}", detail, _retry_after(response), lost=False
            )
        if status in (401, 403):
            return self._error(
                f"authentication failed (HTTP {status}: {detail}).",
                "Set OPENAI_API_KEY to a key that this server accepts.",
            )
        if body is not None and status in (400, 404):
            wrong_model = self._wrong_model_error(str(body.get("model", "")), detail)
            if wrong_model is not None:
                return wrong_model
        if status in (404, 405):
            return self._error(
                f"HTTP {status} for {where}: {detail}.",
                "Check that --base-url is the server's OpenAI API root, usually ending in /v1.",
            )
        return self._error(f"rejected the request (HTTP {status} from {where}: {detail}).")

    def _wrong_model_error(self, model: str, detail: str) -> ServerError | None:
        """Return a wrong-model error when the server does not list ``model``."""
        try:
            served = self._list_models_once()
        except (ServerError, _RetryableError, _MalformedError):
            served = None
        if served is None or model in served:
            return None
        listing = ", ".join(served[:10]) if served else "none"
        return self._error(
            f"model {model!r} is not served here ({detail}).",
            f"Pass --model with a served model: {listing}.",
        )

    def _list_models_once(self) -> list[str] | None:
        """Return the ids from ``GET /models``, or None when the server has no listing."""
        response = self._send("GET", "models", accept=(404, 405))
        try:
            if not response.is_success:
                return None
            payload = _read_json(response)
        except httpx.TransportError as exc:
            raise _RetryableError("connection lost during the response", _short(exc)) from None
        finally:
            response.close()
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise self._error(
                "returned a malformed model list (no 'data' list).",
                "Check that --base-url is an OpenAI-compatible API.",
            )
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

    def list_models(self) -> list[str] | None:
        """Return the model ids that the server lists, or None when it has no listing."""
        try:
            return self._with_retries(self._list_models_once)
        except _MalformedError as exc:
            raise self._error(f"returned a malformed model list ({exc}).") from None

    def prepare(self, progress: ProgressCallback | None = None) -> None:
        """Check that the server responds, and pick its only model when none was given."""
        with self._lock:
            if self._prepared:
                return
        served = self.list_models()
        if not self._model_name:
            if not served or len(served) != 1:
                listing = ", ".join(served) if served else "unknown"
                raise ConfigurationError(
                    "the openai backend needs a model name.",
                    f"Pass --model with a model the server serves ({listing}).",
                )
            self._model_name = served[0]
        emit(progress, Event("notice", f"Using model {self._model_name} at {self.base_url}"))
        with self._lock:
            self._prepared = True

    def complete(
        self, request: ChatRequest, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        self.prepare()
        callback = _serialized(on_tokens)
        if request.n <= 1:
            return [self._sample(request, 0, callback, threading.Event())]

        abort = threading.Event()
        workers = min(request.n, self.settings.concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lossmagic-openai")
        futures: list[Future[Completion]] = []
        try:
            futures = [
                pool.submit(self._sample, request, index, callback, abort)
                for index in range(request.n)
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(future.exception() is not None for future in done):
                raise _first_error(futures)
            return [future.result() for future in futures]
        finally:
            abort.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _request_body(self, request: ChatRequest, index: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model_name,
            "messages": render_messages(request.messages),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            # OpenAI accepts at most four stop strings; the rest are applied here.
            body["stop"] = list(request.stop[:4])
        if request.seed is not None:
            body["seed"] = request.seed + index
        with self._lock:
            for name in self._dropped_fields:
                body.pop(name, None)
        return body

    def _sample(
        self,
        request: ChatRequest,
        index: int,
        on_tokens: TokenCallback | None,
        abort: threading.Event,
    ) -> Completion:
        """Return one completion, dropping fields that the server rejects."""
        for _ in range(len(_OPTIONAL_FIELDS) + 1):
            body = self._request_body(request, index)
            try:
                with self._slots:
                    return self._with_retries(
                        functools.partial(
                            self._stream_completion, body, request.stop, on_tokens, abort
                        )
                    )
            except _UnsupportedFieldError as exc:
                logger.warning(
                    "server at %s rejected the field %r; sending requests without it",
                    self.base_url,
                    exc.field,
                )
                with self._lock:
                    self._dropped_fields.add(exc.field)
        raise self._error("rejected every variant of the request.")

    def _stream_completion(
        self,
        body: dict[str, Any],
        stop: tuple[str, ...],
        on_tokens: TokenCallback | None,
        abort: threading.Event,
    ) -> Completion:
        started = time.perf_counter()
        response = self._send("POST", "chat/completions", body)
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                parts = _parse_whole(_read_json(response))
            else:
                parts = _parse_stream(response.iter_lines(), stop, on_tokens, abort)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc) from None
        except httpx.TransportError as exc:
            raise _RetryableError("connection lost during the response", _short(exc)) from None
        except _MalformedError as exc:
            raise self._error(
                f"returned a malformed chat completion ({exc}).",
                "Check that the server implements the OpenAI chat completions API.",
            ) from None
        except _StreamError as exc:
            raise self._error(f"failed during generation: {exc}.") from None
        finally:
            response.close()

        text, stopped = cut_at_stop(parts.text, stop)
        finish = "stop" if stopped else parts.finish_reason
        return Completion(
            text=text,
            prompt_tokens=parts.prompt_tokens,
            completion_tokens=parts.completion_tokens,
            seconds=time.perf_counter() - started,
            finish_reason=finish,
            extra={"server": self.base_url},
        )


@dataclass
class _Parts:
    """The text, finish reason and token counts of a parsed response."""

    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _MalformedError(Exception):
    """The response does not have the shape of an OpenAI chat completion."""


class _StreamError(Exception):
    """The server sent an error event in place of the next chunk."""


def _read_json(response: httpx.Response) -> Any:
    response.read()
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _MalformedError(f"invalid JSON: {_snippet(response.text)}") from exc


def _snippet(text: str) -> str:
    return repr(text[:60]) if text.strip() else "empty body"


def _usage(parts: _Parts, payload: dict[str, Any]) -> None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return
    if isinstance(usage.get("prompt_tokens"), int):
        parts.prompt_tokens = usage["prompt_tokens"]
    if isinstance(usage.get("completion_tokens"), int):
        parts.completion_tokens = usage["completion_tokens"]


def _first_choice(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        raise _MalformedError(f"expected a JSON object, got {type(payload).__name__}")
    if isinstance(payload.get("error"), dict | str):
        raise _StreamError(json.dumps(payload["error"])[:_DETAIL_LENGTH])
    choices = payload.get("choices")
    if not isinstance(choices, list):
        raise _MalformedError("no 'choices' list")
    if not choices:
        return None
    if not isinstance(choices[0], dict):
        raise _MalformedError("a choice is not an object")
    choice: dict[str, Any] = choices[0]
    return choice


def _parse_whole(payload: Any) -> _Parts:
    """Parse a non-streamed completion, sent by servers that ignore ``stream``."""
    choice = _first_choice(payload)
    message = choice.get("message") if choice else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), str | None):
        raise _MalformedError("no 'message' with text content")
    parts = _Parts(text=message.get("content") or "")
    parts.finish_reason = str(choice.get("finish_reason") or "stop") if choice else "stop"
    parts.completion_tokens = len(parts.text.split())
    _usage(parts, payload)
    return parts


def _parse_stream(
    lines: Iterator[str],
    stop: tuple[str, ...],
    on_tokens: TokenCallback | None,
    abort: threading.Event,
) -> _Parts:
    """Parse server-sent events; stop early at a stop string that the server let through."""
    parts = _Parts()
    pieces: list[str] = []
    chunks = 0
    for line in lines:
        if abort.is_set():
            raise _Aborted
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            raise _MalformedError(f"invalid JSON in a stream event: {_snippet(data)}") from None

        choice = _first_choice(payload)
        _usage(parts, payload)
        if choice is None:
            continue
        chunks += 1
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise _MalformedError("a chunk's 'delta.content' is not a string")
        if content:
            pieces.append(content)
            parts.completion_tokens += 1
            if on_tokens is not None:
                on_tokens(1)
            if stop and cut_at_stop("".join(pieces[-8:]), stop)[1]:
                break
        if choice.get("finish_reason"):
            parts.finish_reason = str(choice["finish_reason"])

    if chunks == 0:
        raise _MalformedError("the stream contained no completion chunks")
    parts.text = "".join(pieces)
    return parts


def _serialized(callback: TokenCallback | None) -> TokenCallback | None:
    """Wrap ``callback`` so that concurrent samples call it one at a time."""
    if callback is None:
        return None
    lock = threading.Lock()

    def locked(count: int) -> None:
        with lock:
            callback(count)

    return locked


def _first_error(futures: list[Future[Completion]]) -> BaseException:
    """Return the exception of the first failed sample, in request order."""
    for future in futures:
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is not None:
                return error
    raise AssertionError("no sample failed")


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:_DETAIL_LENGTH]

