"""The hostile corpus: candidates that attack the sandbox, run through real workers.

Each case runs twice: with the static screen, as users run it, and without it, so the
process boundary alone must contain the attack. Every case must end within its deadline
with the expected error class, leave no process behind, change no file outside its
directory, send nothing over the network, and leave the sandbox working.
"""

from __future__ import annotations

import os
import pickle
import socket
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lossmagic.errors import classify
from lossmagic.sandbox import JobLimits, Sandbox, SandboxReport

HOSTILE = Path(__file__).parent / "hostile"
SPEC = "predictions:float[N,1] targets:float[N,1]"
CONTRACT_ONLY = {"probes": False}
DEADLINE = 2.0
MARKER = "98765.4321"
SECRET = "the-secret-is-swordfish"

MSE = """import torch


def loss_fn(predictions, targets):
    return torch.mean((predictions - targets) ** 2)
"""

VALID = "validated"
"""Expected outcome of a case whose attack fails silently while its loss is correct."""

# Case: (error class with the screen, error class without it).
CASES = {
    "infinite_loop": ("timeout", "timeout"),
    "sleep_forever": ("disallowed_code", "timeout"),
    "memory_bomb": ("memory", "memory"),
    "fork_bomb": ("disallowed_code", "timeout"),
    "setsid_grandchild": ("disallowed_code", "runtime_error"),
    "write_outside": ("disallowed_code", "runtime_error"),
    "torch_save_outside": ("disallowed_code", "runtime_error"),
    "read_secret": ("disallowed_code", "runtime_error"),
    "connect_socket": ("disallowed_code", "runtime_error"),
    "os_system": ("disallowed_code", VALID),
    "subprocess_run": ("disallowed_code", "runtime_error"),
    "torch_load_pickle": ("disallowed_code", "runtime_error"),
    "ctypes_call": ("disallowed_code", "runtime_error"),
    "flood_output": (VALID, VALID),
    "forge_exit": ("disallowed_code", "sandbox_failure"),
    "forge_printed_result": ("missing_or_zero_gradient", "missing_or_zero_gradient"),
    "forge_record_pipe": ("disallowed_code", "sandbox_failure"),
    "forge_frames": ("disallowed_code", "runtime_error"),
    "forge_traceback_frames": ("disallowed_code", "runtime_error"),
    "constant": ("missing_or_zero_gradient", "missing_or_zero_gradient"),
}


class _Payload:
    """Unpickling this runs a shell command, as a malicious checkpoint would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@dataclass
class Target:
    """What the attacks aim at: a folder outside the job, a secret and a listening socket."""

    outside: Path
    secret_file: Path
    listener: socket.socket

    def substitutions(self) -> dict[str, str]:
        return {
            "outside": str(self.outside),
            "secret_file": str(self.secret_file),
            "port": str(self.listener.getsockname()[1]),
            "marker": MARKER,
        }

    def files(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in sorted(self.outside.iterdir())}

    def accepted_connection(self) -> bool:
        try:
            connection, _ = self.listener.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    outside = tmp_path_factory.mktemp("outside")
    secret_file = outside / "secret.txt"
    secret_file.write_text(SECRET)
    payload = _Payload(f"touch {outside}/unpickled.txt")
    (outside / "payload.pkl").write_bytes(pickle.dumps(payload))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    yield Target(outside, secret_file, listener)
    listener.close()


@pytest.fixture(scope="module", params=["screened", "unscreened"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    limits = JobLimits(cpu_seconds=10, memory_bytes=512 * 2**20)
    with Sandbox(timeout=DEADLINE, limits=limits, screen=request.param == "screened") as box:
        # The first job waits for the worker to import PyTorch; keep that out of the timings.
        assert box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY).passed
        yield box


def _marked_processes() -> list[int]:
    """Return processes whose command line carries MARKER (the grandchild's ``sleep``)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if MARKER.encode() in handle.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _leftover_processes(sandbox: Sandbox, settle: float = 10.0) -> list[int]:
    """Wait for finished jobs to exit; return processes beyond the worker and its spare."""
    end = time.monotonic() + settle
    while True:
        extra = sandbox.processes()[2:] + _marked_processes()
        if not extra or time.monotonic() > end:
            return extra
        time.sleep(0.05)


def _text(report: SandboxReport) -> str:
    messages = [c.message + repr(c.evidence) for c in report.checks]
    return report.output + report.message + "".join(messages)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_candidate(case: str, sandbox: Sandbox, target: Target) -> None:
    source = string.Template((HOSTILE / f"{case}.py").read_text())
    source_text = source.safe_substitute(target.substitutions())
    files_before = target.files()

    started = time.monotonic()
    report = sandbox.validate(source_text, "loss_fn", SPEC, options=CONTRACT_ONLY)
    elapsed = time.monotonic() - started

    expected = CASES[case][0 if sandbox.screen else 1]
    error = classify(report.checks)
    if expected == VALID:
        assert report.passed, report.checks
    else:
        assert not report.passed
        assert error is not None
        assert error.error_class.value == expected, error.message
    assert elapsed < DEADLINE + 3.0
    assert _leftover_processes(sandbox) == []
    assert target.files() == files_before
    assert not target.accepted_connection()
    assert SECRET not in _text(report)
    assert sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY).passed


def test_flooded_output_is_capped(sandbox: Sandbox, target: Target) -> None:
    source = (HOSTILE / "flood_output.py").read_text()
    report = sandbox.validate(source, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert len(report.output) == 64 * 1024
    assert int(str(report.extra["output_dropped_bytes"])) > 1_000_000
