"""The parent side of the sandbox: send validation jobs to a warm worker and judge them.

The parent owns the verdict. It takes check results only from records on the job's
private pipe that carry the job's nonce. It enforces the wall-clock deadline, kills every
process of a job that overruns it, caps the output it keeps, and replaces a worker that
died. Exit codes and printed text can fail a job but never pass it.

One ``Sandbox`` serves many jobs: its worker starts on first use (or ``start()``) and
stays until ``close()``. ``shared_sandbox()`` returns one per process, for callers that
validate across runs, such as a notebook.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from lossmagic.checks.base import CheckResult
from lossmagic.exceptions import ConfigurationError, SandboxError
from lossmagic.sandbox.jobs import JobResult, run_job_on
from lossmagic.sandbox.limits import JobLimits
from lossmagic.sandbox.pool import WorkerMode, WorkerPool, find_tagged_processes
from lossmagic.sandbox.screen import screen_check

__all__ = [
    "Sandbox",
    "SandboxReport",
    "close_shared_sandbox",
    "restart_worker",
    "shared_sandbox",
]

logger = logging.getLogger(__name__)

Outcome = Literal["completed", "timeout", "crashed", "rejected"]

# Fragments of allocation failures from Python and the PyTorch allocators, lower case.
_ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "not enough memory")


@dataclass
class SandboxReport:
    """The outcome of one validation job: its check results, how it ended and its output."""

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
    """Validate candidates in isolated job processes started from a warm worker.

    ``timeout`` is the wall-clock deadline of one job in seconds, ``limits`` the resource
    budget of each job and ``screen`` whether the static screen runs before dispatch.
    By default CPU jobs fork from one warm worker (``worker_mode="fork"``), and CUDA jobs
    each get a freshly spawned worker with one spare kept started (``"oneshot"``).
    ``namespaces=False`` runs jobs without Linux namespaces, as on kernels that refuse
    them, which tests of that fallback use. Safe to call from several threads; jobs run
    one at a time.
    """

    def __init__(
        self,
        timeout: float = 30.0,
        *,
        limits: JobLimits | None = None,
        screen: bool = True,
        worker_mode: WorkerMode | None = None,
        namespaces: bool = True,
    ) -> None:
        if timeout <= 0:
            raise ValueError(
                f"invalid sandbox timeout {timeout!r}: use a positive number of seconds"
            )
        self.timeout = timeout
        self.limits = limits or JobLimits()
        self.screen = screen
        self.worker_mode = worker_mode
        self.namespaces = namespaces
        self._lock = threading.Lock()
        self._pools: dict[str, WorkerPool] = {}
        self._tags: set[str] = set()
        self._closed = False

    def start(self, device: str = "cpu") -> None:
        """Start the worker for ``device`` now, so the first job does not wait for it."""
        with self._lock:
            self._pool(device).start()

    def validate(
        self,
        source: str,
        name: str,
        spec: str,
        seed: int = 0,
        options: dict[str, Any] | None = None,
        *,
        device: str = "cpu",
        timeout: float | None = None,
    ) -> SandboxReport:
        """Run the checks on ``source`` in a job process and collect their results.

        ``options`` selects optional checks; see ``lossmagic.checks.runner``. ``device``
        is where the candidate runs: ``cpu`` or a CUDA device such as ``cuda:0``.
        ``timeout`` overrides the sandbox's deadline for this job.
        """
        if self._closed:
            raise SandboxError("this sandbox is closed; create a new one or call restart()")
        if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
            raise ConfigurationError(
                f"invalid sandbox device {device!r}.", "Use cpu, cuda or cuda:N."
            )
        started = time.perf_counter()
        if self.screen:
            rejected = screen_check(source)
            if rejected is not None:
                seconds = time.perf_counter() - started
                return SandboxReport([rejected], "rejected", rejected.message, seconds)

        nonce = secrets.token_hex(16)
        job = {
            "nonce": nonce,
            "source": source,
            "name": name,
            "spec": spec,
            "seed": seed,
            "options": options or {},
            "device": device,
        }
        deadline = self.timeout if timeout is None else timeout
        limits = self.limits
        if limits.cpu_seconds is None:
            limits = dataclasses.replace(limits, cpu_seconds=math.ceil(deadline) + 5)

        workdir = tempfile.mkdtemp(prefix="lossmagic-job-")
        try:
            with self._lock:
                if self._closed:
                    raise SandboxError("this sandbox is closed; create a new one or call restart()")
                pool = self._pool(device)
                result = run_job_on(pool, job, workdir, limits, deadline)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return _report(result, nonce, deadline, time.perf_counter() - started)

    def processes(self) -> list[int]:
        """Return the pids of this sandbox's live processes: the workers first, then jobs.

        Every worker this sandbox ever started counts, so a job process that escaped its
        worker's process tree would show here too.
        """
        workers = [pid for pool in self._pools.values() if (pid := pool.worker_pid())]
        others = [pid for pid in find_tagged_processes(self._tags) if pid not in workers]
        return workers + others

    def restart(self) -> None:
        """Stop every worker; the next job starts fresh ones."""
        with self._lock:
            self._stop_pools()
            self._closed = False

    def close(self) -> None:
        """Stop every worker and their jobs. Later calls to ``validate`` raise ``SandboxError``."""
        with self._lock:
            self._stop_pools()
            self._closed = True

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pool(self, device: str) -> WorkerPool:
        if device not in self._pools:
            self._pools[device] = WorkerPool(
                device, self.worker_mode, self._tags, namespaces=self.namespaces
            )
        return self._pools[device]

    def _stop_pools(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _report(result: JobResult, nonce: str, timeout: float, seconds: float) -> SandboxReport:
    """Turn what the parent observed of a job into a report; only nonce records count."""
    checks: list[CheckResult] = []
    done: dict[str, Any] | None = None
    for record in result.records:
        if record.get("nonce") != nonce:
            continue
        if isinstance(record.get("check"), dict):
            checks.append(CheckResult.from_dict(record["check"]))
        elif record.get("done") is True:
            done = record
    # The exit code is unknown when the job was judged before it finished exiting.
    complete = done is not None and done.get("count") == len(checks)
    clean_exit = result.exit_code in (0, None) and not result.worker_died
    _mark_allocation_failures(checks)

    output = result.output.decode("utf-8", "replace")
    extra: dict[str, object] = {"exit_code": result.exit_code, **result.notes}
    if result.output_dropped:
        extra["output_dropped_bytes"] = result.output_dropped

    if result.timed_out or result.exit_code == -signal.SIGXCPU:
        message = f"the job did not finish within {timeout:g} s"
        checks.append(CheckResult("timeout", "fail", message, {"seconds": seconds}))
        return SandboxReport(checks, "timeout", message, seconds, output, extra)

    if complete and clean_exit and not result.records_invalid:
        return SandboxReport(checks, "completed", "", seconds, output, extra)

    message = _crash_message(result, done is not None)
    evidence = {"exit_code": result.exit_code, "output": output[-2000:]}
    checks.append(CheckResult("crash", "fail", message, evidence))
    return SandboxReport(checks, "crashed", message, seconds, output, extra)


def _crash_message(result: JobResult, done: bool) -> str:
    if result.records_invalid:
        return f"the job sent invalid records ({result.records_invalid})"
    if result.worker_died:
        return "the sandbox worker died during the job; it was replaced"
    code = result.exit_code
    if done:
        return f"the job reported a result that does not match its check records (exit code {code})"
    if code is not None and code < 0:
        return f"the job process was killed by signal {-code} before reporting every check"
    return f"the job process ended before reporting every check (exit code {code})"


def _mark_allocation_failures(checks: list[CheckResult]) -> None:
    """Insert a ``memory`` failure before the first check that failed to allocate memory."""
    for index, check in enumerate(checks):
        error = check.evidence.get("error")
        if not (check.failed and isinstance(error, dict)):
            continue
        message = str(error.get("message", "")).lower()
        if error.get("type") == "MemoryError" or any(f in message for f in _ALLOCATION_FAILURES):
            text = f"the candidate ran out of memory in check {check.name!r}: {check.message}"
            checks.insert(index, CheckResult("memory", "fail", text[:500], {"error": error}))
            return


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared_sandbox(timeout: float | None = None) -> Sandbox:
    """Return this process's shared sandbox, creating it on first use.

    Its worker outlives single runs, so only the first validation in a process pays for
    starting it. ``timeout``, when given, becomes the deadline of its later jobs.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sandbox()
        if timeout is not None:
            _shared.timeout = timeout
        return _shared


def restart_worker() -> None:
    """Restart the shared sandbox's workers, if it has any; the next job starts fresh ones."""
    with _shared_lock:
        sandbox = _shared
    if sandbox is not None:
        sandbox.restart()


def close_shared_sandbox() -> None:
    """Stop the shared sandbox's workers; the next ``shared_sandbox()`` call makes a new one."""
    global _shared
    with _shared_lock:
        sandbox, _shared = _shared, None
    if sandbox is not None:
        sandbox.close()
