"""The parent side of the sandbox: run a validation job in a separate, limited process.

The parent owns the verdict. It takes check results only from records on a private pipe
that carry the job's nonce, enforces the wall-clock deadline and kills the child's whole
process group when it passes. Exit codes and printed text never decide a verdict.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lossmagic
from lossmagic.checks.base import CheckResult

__all__ = ["Sandbox", "SandboxReport"]

logger = logging.getLogger(__name__)

Outcome = Literal["completed", "timeout", "crashed"]

_OUTPUT_LIMIT = 64 * 1024


@dataclass
class SandboxReport:
    """What one validation job produced."""

    checks: list[CheckResult]
    outcome: Outcome
    message: str = ""
    seconds: float = 0.0
    output: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Return whether the job completed and every authoritative check passed."""
        authoritative = [c for c in self.checks if c.authoritative]
        return (
            self.outcome == "completed"
            and bool(authoritative)
            and all(c.verdict != "fail" for c in authoritative)
        )


class Sandbox:
    """Validate candidates in child processes with a deadline."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def validate(
        self,
        source: str,
        name: str,
        spec: str,
        seed: int = 0,
        options: dict[str, Any] | None = None,
    ) -> SandboxReport:
        """Run the checks on ``source`` in a child process and collect their results.

        ``options`` selects optional checks; see ``lossmagic.checks.runner``.
        """
        nonce = secrets.token_hex(16)
        job = json.dumps(
            {
                "nonce": nonce,
                "source": source,
                "name": name,
                "spec": spec,
                "seed": seed,
                "options": options or {},
            }
        )
        started = time.perf_counter()

        with tempfile.TemporaryDirectory(prefix="lossmagic-job-") as workdir:
            read_fd, write_fd = os.pipe()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "lossmagic.sandbox.child", str(write_fd)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    cwd=workdir,
                    env=_child_environment(workdir),
                    start_new_session=True,
                )
            finally:
                os.close(write_fd)

            records: list[dict[str, Any]] = []
            reader = threading.Thread(
                target=_read_records, args=(read_fd, nonce, records), daemon=True
            )
            reader.start()

            outcome: Outcome = "completed"
            try:
                output, _ = process.communicate(job.encode(), timeout=self.timeout)
            except subprocess.TimeoutExpired:
                outcome = "timeout"
                _kill_group(process)
                output, _ = process.communicate()
            except BaseException:
                _kill_group(process)
                raise
            reader.join(timeout=5)

        seconds = time.perf_counter() - started
        checks = [
            CheckResult.from_dict(record["check"])
            for record in records
            if isinstance(record.get("check"), dict)
        ]
        done = any(r.get("done") is True for r in records)
        text = output.decode("utf-8", "replace")[:_OUTPUT_LIMIT]

        if outcome == "timeout":
            message = f"the job did not finish within {self.timeout:.0f} s"
            checks.append(CheckResult("timeout", "fail", message, {"seconds": seconds}))
            return SandboxReport(checks, "timeout", message, seconds, text)
        if not done:
            code = process.returncode
            message = f"the job process ended before reporting every check (exit code {code})"
            checks.append(
                CheckResult(
                    "crash",
                    "fail",
                    message,
                    {"exit_code": process.returncode, "output": text[-2000:]},
                )
            )
            return SandboxReport(checks, "crashed", message, seconds, text)
        return SandboxReport(checks, "completed", "", seconds, text)

    def close(self) -> None:
        """Release the sandbox's resources."""


def _child_environment(workdir: str) -> dict[str, str]:
    """Return a scrubbed environment for the child: no secrets, home in its own folder."""
    package_root = str(Path(lossmagic.__file__).resolve().parent.parent)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONPATH": package_root,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }


def _read_records(fd: int, nonce: str, records: list[dict[str, Any]]) -> None:
    """Collect the JSON records that carry ``nonce``; anything else is ignored."""
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as channel:
        for line in channel:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.debug("ignored a malformed sandbox record")
                continue
            if isinstance(record, dict) and record.get("nonce") == nonce:
                records.append(record)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
