"""The openai backend against small fake servers on loopback: settings, faults, concurrency."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lossmagic.backends.base import ChatMessage, ChatRequest
from lossmagic.backends.openai import OpenAIBackend, ServerSettings
from lossmagic.exceptions import ConfigurationError, ServerError
from lossmagic.models import list_models

from .conftest import run_cli
from .servers.fake_openai import FakeServer, Reply, serve
from .servers.transformers_serve import free_port

MSE_TEXT = (
    "```python\ndef loss_fn(predictions, targets):\n"
    "    return ((predictions - targets) ** 2).mean()\n```\n"
)
FAST = ServerSettings(read_timeout=5.0, backoff=0.01)


@pytest.fixture
def fake() -> Iterator[object]:
    """Start fake servers for one test and stop them afterwards."""
    servers = []

    def start(script: list[Reply], models: list[str] | None = None) -> FakeServer:
        state, server = serve(script, models)
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _request(n: int = 1, stop: tuple[str, ...] = ()) -> ChatRequest:
    return ChatRequest(
        messages=(ChatMessage("user", "Write the loss."),),
        stop=stop,
        max_new_tokens=64,
        temperature=0.3,
        top_p=0.9,
        seed=11,
        n=n,
    )


def _backend(state: FakeServer, **settings: float) -> OpenAIBackend:
    chosen = ServerSettings(**{**FAST.__dict__, **settings})
    return OpenAIBackend("fake-model", state.url, api_key="secret", settings=chosen)


def test_stream_sends_settings_and_counts_tokens(fake) -> None:
    state = fake([Reply(text="alpha beta gamma")])
    counts: list[int] = []

    [completion] = _backend(state).complete(_request(stop=("END",)), counts.append)

    assert completion.text == "alpha beta gamma "
    assert completion.completion_tokens == 11
    assert completion.prompt_tokens == 7
    assert sum(counts) == 3
    body = state.requests[0]
    assert body["model"] == "fake-model"
    assert body["stream"] is True
    assert body["stop"] == ["END"]
    assert body["seed"] == 11
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 64
    assert state.authorization[0] == "Bearer secret"


def test_stop_string_cuts_when_server_ignores_it(fake) -> None:
    state = fake([Reply(text="keep this STOP drop that")])
    [completion] = _backend(state).complete(_request(stop=("STOP",)))
    assert completion.text == "keep this "
    assert completion.finish_reason == "stop"


def test_whole_json_reply_is_accepted(fake) -> None:
    state = fake([Reply(kind="json", text="plain answer")])
    [completion] = _backend(state).complete(_request())
    assert completion.text == "plain answer"
    assert completion.completion_tokens == 9


def test_samples_run_concurrently_with_bound(fake) -> None:
    state = fake([Reply(delay=0.3)])
    completions = _backend(state, concurrency=4).complete(_request(n=4))
    assert len(completions) == 4
    assert state.max_in_flight == 4
    assert sorted(body["seed"] for body in state.requests) == [11, 12, 13, 14]

    bounded = fake([Reply(delay=0.2)])
    _backend(bounded, concurrency=2).complete(_request(n=5))
    assert bounded.max_in_flight == 2
    assert len(bounded.requests) == 5


def test_bound_holds_across_threads(fake) -> None:
    state = fake([Reply(delay=0.2)])
    backend = _backend(state, concurrency=2)
    results: list[int] = []

    def run() -> None:
        results.append(len(backend.complete(_request(n=3))))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [3, 3, 3]
    assert state.max_in_flight == 2


def test_failed_sample_fails_whole_request(fake) -> None:
    state = fake([Reply(kind="raw", status=401, body="no key"), Reply(delay=0.5)])
    with pytest.raises(ServerError, match="authentication failed"):
        _backend(state, concurrency=2).complete(_request(n=2))
    assert len(state.requests) == 2


def test_retries_server_errors_then_succeeds(fake) -> None:
    state = fake(
        [
            Reply(kind="raw", status=503, body='{"detail": "warming up"}'),
            Reply(kind="raw", status=429, body="slow down", headers={"Retry-After": "0"}),
            Reply(text="done"),
        ]
    )
    [completion] = _backend(state).complete(_request())
    assert completion.text == "done "
    assert len(state.requests) == 3


def test_retries_are_bounded(fake) -> None:
    state = fake([Reply(kind="raw", status=500, body='{"error": {"message": "boom"}}')])
    with pytest.raises(ServerError) as caught:
        _backend(state, retries=1).complete(_request())
    message = str(caught.value)
    assert "HTTP 500 from /v1/chat/completions after 2 attempts (boom)" in message
    assert "LOSSMAGIC_SERVER_CONCURRENCY" in message
    assert "\n" not in message
    assert len(state.requests) == 2


def test_dropped_stream_is_retried(fake) -> None:
    state = fake([Reply(kind="drop", chunks=2), Reply(text="second try")])
    [completion] = _backend(state).complete(_request())
    assert completion.text == "second try "
    assert len(state.requests) == 2


def test_dropped_stream_every_time_fails(fake) -> None:
    state = fake([Reply(kind="drop", chunks=2)])
    with pytest.raises(ServerError, match="connection lost during the response"):
        _backend(state).complete(_request())


def test_unreachable_server_fails_fast() -> None:
    backend = OpenAIBackend("any", f"http://127.0.0.1:{free_port()}/v1")
    started = time.perf_counter()
    with pytest.raises(ServerError) as caught:
        backend.complete(_request())
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "cannot connect" in message
    assert "--base-url" in message
    assert "\n" not in message


def test_slow_server_times_out_without_retry(fake) -> None:
    state = fake([Reply(delay=3.0)])
    started = time.perf_counter()
    with pytest.raises(ServerError) as caught:
        _backend(state, read_timeout=0.5).complete(_request())
    assert time.perf_counter() - started < 2.5
    assert "timed out" in str(caught.value)
    assert "LOSSMAGIC_SERVER_TIMEOUT" in str(caught.value)
    assert len(state.requests) == 1


@pytest.mark.parametrize(
    ("status", "missing"),
    [
        (404, '{"error": {"message": "The model `nope` does not exist."}}'),
        (400, '{"detail": "Server is pinned to \'fake-model\'; requested \'nope\'."}'),
    ],
)
def test_wrong_model_lists_served_models(fake, status: int, missing: str) -> None:
    state = fake([Reply(kind="raw", status=status, body=missing)], models=["fake-model", "other"])
    backend = OpenAIBackend("nope", state.url, settings=FAST)
    with pytest.raises(ServerError) as caught:
        backend.complete(_request())
    message = str(caught.value)
    assert "model 'nope' is not served here" in message
    assert "fake-model, other" in message
    assert "\n" not in message


def test_auth_failure_names_api_key(fake) -> None:
    state = fake([Reply(kind="raw", status=401, body='{"error": "invalid api key"}')])
    with pytest.raises(ServerError) as caught:
        _backend(state).complete(_request())
    message = str(caught.value)
    assert "authentication failed (HTTP 401: invalid api key)" in message
    assert "OPENAI_API_KEY" in message


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(kind="raw", body="{not json", content_type="application/json"), "invalid JSON"),
        (Reply(kind="raw", body='{"object": "x"}'), "no 'choices' list"),
        (Reply(kind="raw", body='{"choices": [7]}'), "a choice is not an object"),
        (Reply(kind="raw", body="hello", content_type="text/plain"), "no completion chunks"),
        (
            Reply(kind="raw", body='data: {"choices": [{"delta": {"content": 5}}]}\n\n',
                  content_type="text/event-stream"),
            "is not a string",
        ),
        (
            Reply(kind="raw", body="data: {oops\n\n", content_type="text/event-stream"),
            "invalid JSON in a stream event",
        ),
    ],
)
def test_malformed_response_is_one_line_error(fake, reply: Reply, reason: str) -> None:
    state = fake([reply])
    with pytest.raises(ServerError) as caught:
        _backend(state).complete(_request())
    message = str(caught.value)
    assert "malformed chat completion" in message
    assert reason in message
    assert "\n" not in message
    assert len(state.requests) == 1


def test_rejected_optional_field_is_dropped(fake) -> None:
    rejected = '{"detail": "Unexpected fields in the request: {\'seed\'}"}'
    state = fake([Reply(kind="raw", status=422, body=rejected), Reply(text="ok")])
    backend = _backend(state)
    [completion] = backend.complete(_request())
    backend.complete(_request())
    assert completion.text == "ok "
    assert "seed" in state.requests[0]
    assert "seed" not in state.requests[1]
    assert "seed" not in state.requests[2]


def test_only_served_model_is_picked(fake) -> None:
    state = fake([Reply()], models=["served-one"])
    backend = OpenAIBackend(None, state.url, settings=FAST)
    backend.prepare()
    assert backend.model == "served-one"

    several = fake([Reply()], models=["a", "b"])
    with pytest.raises(ConfigurationError, match=r"Pass --model .*\(a, b\)"):
        OpenAIBackend(None, several.url, settings=FAST).prepare()


def test_url_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOSSMAGIC_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/")
    assert OpenAIBackend("m").base_url == "http://127.0.0.1:9/v1"

    monkeypatch.setenv("LOSSMAGIC_BASE_URL", "http://127.0.0.1:8/api/v1/")
    assert OpenAIBackend("m").base_url == "http://127.0.0.1:8/api/v1"

    with pytest.raises(ConfigurationError, match="invalid server URL 'localhost:8000'"):
        OpenAIBackend("m", "localhost:8000")

    monkeypatch.setenv("LOSSMAGIC_SERVER_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="invalid LOSSMAGIC_SERVER_TIMEOUT='soon'"):
        OpenAIBackend("m")

    monkeypatch.setenv("LOSSMAGIC_SERVER_TIMEOUT", "7.5")
    monkeypatch.setenv("LOSSMAGIC_SERVER_CONCURRENCY", "8")
    settings = OpenAIBackend("m").settings
    assert settings.read_timeout == 7.5
    assert settings.concurrency == 8

    monkeypatch.delenv("LOSSMAGIC_BASE_URL")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ConfigurationError, match="needs a server URL"):
        OpenAIBackend("m")


def test_cli_runs_loop_through_server(fake, tmp_path: Path) -> None:
    state = fake([Reply(text=MSE_TEXT)])
    result = run_cli(
        "generate", "mean squared error",
        "--inputs", "predictions:float[N,1] targets:float[N,1]",
        "--backend", "openai", "--base-url", state.url, "--model", "fake-model",
        "--max-iters", "1", "--json", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["backend"] == "openai"
    assert summary["model"] == "fake-model"
    assert "return ((predictions - targets) ** 2).mean()" in summary["code"]
    assert state.requests[0]["stop"] == ["\n```\n"]


def test_cli_unreachable_server_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli(
        "generate", "mean squared error", "--backend", "openai", "--base-url", url,
        "--model", "m", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: server at {url}: cannot connect")


def test_models_lists_embedded_path_and_server(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    state = fake([Reply()], models=["served-one", "served-two"])
    monkeypatch.setenv("LOSSMAGIC_BASE_URL", state.url)
    entries = list_models()

    embedded = entries[0]
    assert embedded["backend"] == "embedded"
    assert embedded["path"].endswith("smollm2-135m-instruct")
    served = [e["model"] for e in entries if e["backend"] == "openai"]
    assert served == ["served-one", "served-two"]
    assert all(e["status"] == "served" for e in entries if e["backend"] == "openai")

    monkeypatch.setenv("LOSSMAGIC_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    [unreachable] = [e for e in list_models() if e["backend"] == "openai"]
    assert unreachable["status"].startswith("unreachable: ")
