"""The openai backend against a real ``transformers serve`` that serves the embedded model.

One server starts for the module (about 30 s on two cores). The last test kills it, so
it must stay last in this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lossmagic.backends.base import ChatMessage, ChatRequest
from lossmagic.backends.embedded import embedded_model_path, prepare_embedded_model
from lossmagic.backends.openai import OpenAIBackend

from .conftest import run_cli
from .servers.transformers_serve import ServeProcess

pytestmark = pytest.mark.model

MSE_ARGS = (
    "generate",
    "mean squared error loss for regression",
    "--inputs",
    "predictions:float[N,1] targets:float[N,1]",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    prepare_embedded_model()
    process = ServeProcess(embedded_model_path(), tmp_path_factory.mktemp("serve") / "serve.log")
    process.start()
    yield process
    process.stop()


def test_samples_stream_concurrently(server: ServeProcess) -> None:
    backend = OpenAIBackend(server.model, server.base_url)
    request = ChatRequest(
        messages=(ChatMessage("user", "Write a Python function that adds two numbers."),),
        stop=("\n```\n",),
        max_new_tokens=24,
        temperature=0.7,
        seed=3,
        n=2,
    )
    counts: list[int] = []

    completions = backend.complete(request, counts.append)

    assert len(completions) == 2
    assert all(c.text.strip() for c in completions)
    assert all(0 < c.completion_tokens <= 24 for c in completions)
    assert all(c.prompt_tokens > 0 for c in completions)
    assert sum(counts) > 0


def test_full_loop_through_server(server: ServeProcess, tmp_path: Path) -> None:
    result = run_cli(
        *MSE_ARGS,
        "--backend", "openai", "--base-url", server.base_url, "--model", server.model,
        "--strategy", "baseline", "--max-iters", "2", "--temperature", "0", "--json",
        "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode in (0, 1), result.stderr

    summary = json.loads(result.stdout)
    assert summary["backend"] == "openai"
    assert summary["model"] == server.model
    first = summary["iterations"][0]
    # The small model sometimes names the function after the task, so only code is required.
    assert "def " in first["raw_output"]
    assert first["code"] or first["error"]
    assert first["completion_tokens"] > 0
    assert first["prefill"] == ""
    record = json.loads(Path(summary["record_path"]).read_text())
    assert record["status"] in ("validated", "failed")


def _wait_for_iterations(runs: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs.glob("*/record.json"):
            try:
                iterations = json.loads(path.read_text())["iterations"]
            except (OSError, json.JSONDecodeError, KeyError):
                continue
            if sum(1 for i in iterations if i.get("decision")) >= count:
                return
        time.sleep(0.2)
    raise AssertionError(f"no run record with {count} finished iterations in {timeout:g} s")


def test_server_killed_mid_run(server: ServeProcess, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # 16 new tokens truncate every candidate, so the run keeps resampling until the kill.
    command = [
        str(Path(sys.executable).with_name("lossmagic")), *MSE_ARGS,
        "--backend", "openai", "--base-url", server.base_url, "--model", server.model,
        "--strategy", "baseline", "--max-iters", "40", "--max-new-tokens", "16",
        "--runs-dir", str(runs), "--quiet",
    ]
    run = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_iterations(runs, 1, timeout=240)
        server.kill()
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()

    assert run.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: server at {server.base_url}: ")

    [path] = runs.glob("*/record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "error"
    assert record["message"] == lines[0].removeprefix("error: ")
    assert sum(1 for i in record["iterations"] if i["decision"]) >= 1

    started = time.monotonic()
    again = run_cli(
        *MSE_ARGS, "--backend", "openai", "--base-url", server.base_url,
        "--model", server.model, "--runs-dir", str(tmp_path / "again"),
        cwd=tmp_path,
    )
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "cannot connect after 3 attempts" in again.stderr
    assert time.monotonic() - started < 30
