"""Interrupting ``%%lossgen``: the run stops at once, keeps its record and defines nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import lossmagic.magics
from lossmagic.display import TextProgress
from lossmagic.progress import Event
from lossmagic.records import load_record

from .test_magic import loaded_shell

SPEC = "'predictions:float[N,1] targets:float[N,1]'"
ENDLESS_BODY = "\n    while True:\n        pass\n```"


class InterruptingProgress(TextProgress):
    """Send SIGINT to this process a moment after the named stage starts."""

    stage = "validating"
    delay = 1.0
    sent_at: float | None = None

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if event.kind == "stage" and event.message.startswith(self.stage) and not self._armed():
            timer = threading.Timer(self.delay, self._interrupt)
            timer.daemon = True
            timer.start()

    @classmethod
    def _armed(cls) -> bool:
        armed = getattr(cls, "_timer_started", False)
        cls._timer_started = True
        return armed

    @classmethod
    def _interrupt(cls) -> None:
        cls.sent_at = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(InterruptingProgress, "_timer_started", False, raising=False)
    monkeypatch.setattr(InterruptingProgress, "sent_at", None)
    monkeypatch.setattr(lossmagic.magics, "TextProgress", InterruptingProgress)
    with loaded_shell() as shell:
        yield shell


def interrupt_cell(shell: InteractiveShell, line: str) -> float:
    """Run the cell until the interrupt and return seconds from the signal to the stop."""
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("lossgen", line, "mean squared error")
    stopped = time.perf_counter()
    assert InterruptingProgress.sent_at is not None
    return stopped - InterruptingProgress.sent_at


def test_interrupt_during_validation(shell: InteractiveShell, responses_file, capsys) -> None:
    path = responses_file(["nothing\n```", ENDLESS_BODY])
    shell.run_line_magic("config", "LossMagics.backend = 'scripted'")
    shell.run_line_magic("config", f"LossMagics.model = {str(path)!r}")

    latency = interrupt_cell(shell, f"--name endless --inputs {SPEC} --max-iters 1")

    print(f"interrupt to stop: {latency:.2f} s")
    assert latency < 5.0
    assert "endless" not in shell.user_ns
    assert "Interrupted after 1 iteration(s): nothing was defined" in capsys.readouterr().out

    entry = shell.run_line_magic("lossgen", "show 1")
    assert entry.result.status == "interrupted"
    saved = load_record(entry.result.record_path)
    assert saved.status == "interrupted"
    assert "while True:" in saved.iterations[0].code


@pytest.mark.model
def test_interrupt_during_generation(shell: InteractiveShell, capsys) -> None:
    InterruptingProgress.stage = "generating"
    try:
        latency = interrupt_cell(shell, f"--name mse --inputs {SPEC} --max-iters 2")
    finally:
        InterruptingProgress.stage = "validating"

    print(f"interrupt to stop: {latency:.2f} s")
    assert latency < 5.0
    assert "mse" not in shell.user_ns
    entry = shell.run_line_magic("lossgen", "show 1")
    assert entry.result.status == "interrupted"
    assert load_record(entry.result.record_path).status == "interrupted"
