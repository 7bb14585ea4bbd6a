"""One job as the parent runs it: hand it to a worker, read its pipes, enforce the deadline.

The parent creates the job's three pipes itself and passes their worker-side ends to the
worker, so records and output flow straight from the job to the parent, and the worker
never relays anything that could change the verdict.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from lossmagic.exceptions import SandboxError
from lossmagic.sandbox.isolation import list_descendants
from lossmagic.sandbox.limits import JobLimits
from lossmagic.sandbox.pool import WorkerPool, WorkerProcess

__all__ = ["JobResult", "run_job_on"]

logger = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
"""Bytes of a job's standard output and error that the parent keeps; the rest is dropped."""

RECORD_LINE_LIMIT = 1024 * 1024
RECORDS_LIMIT = 16 * 1024 * 1024

_GRACE_SECONDS = 2.0
_CHUNK = 65536


@dataclass
class JobResult:
    """The parent's observations of one job, before it is judged."""

    records: list[dict[str, Any]] = field(default_factory=list)
    output: bytes = b""
    output_dropped: int = 0
    exit_code: int | None = None
    timed_out: bool = False
    worker_died: bool = False
    records_invalid: str = ""
    notes: dict[str, object] = field(default_factory=dict)


class _WorkerUnavailable(Exception):
    """The worker could not take the job; a fresh worker may."""


class _RecordReader:
    """Split the record pipe into JSON records, within the size limits."""

    def __init__(self, result: JobResult, nonce: str) -> None:
        self.result = result
        self.nonce = nonce
        self.buffer = b""
        self.total = 0
        self.done = False

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.result.records_invalid:
            return
        if self.total > RECORDS_LIMIT:
            self.result.records_invalid = f"more than {RECORDS_LIMIT} bytes of records"
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > RECORD_LINE_LIMIT:
            self.result.records_invalid = f"a record longer than {RECORD_LINE_LIMIT} bytes"
            return
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                logger.debug("ignored a malformed sandbox record of %d bytes", len(line))
                continue
            if isinstance(record, dict):
                self.result.records.append(record)
                self.done = self.done or (record.get("nonce") == self.nonce and "done" in record)


class _JobRun:
    """The parent's event loop over one job's pipes and its worker's control socket."""

    def __init__(self, worker: WorkerProcess, job: dict[str, Any], deadline: float) -> None:
        self.worker = worker
        self.result = JobResult()
        self.id = job["nonce"]
        self.pending = json.dumps(job).encode()
        self.deadline = deadline
        self.ended = False
        self.control_open = True
        self.records = _RecordReader(self.result, job["nonce"])
        # With PID namespaces a job that sent its last record and closed its pipes is judged
        # at once: its processes can only die with it. Without them the parent waits for
        # the worker to report the end, so the worker can kill the job's leftovers first.
        self.early_verdict = bool(worker.info.get("pid_namespace"))

    def run(self, workdir: str, limits: JobLimits) -> JobResult:
        job_read, job_write = os.pipe()
        record_read, record_write = os.pipe()
        output_read, output_write = os.pipe()
        try:
            message = {"op": "job", "id": self.id, "workdir": workdir, "limits": limits.to_dict()}
            self.worker.send_job(message, [job_read, record_write, output_write])
        except OSError as exc:
            for fd in (job_write, record_read, output_read):
                os.close(fd)
            raise _WorkerUnavailable(str(exc)) from exc
        finally:
            for fd in (job_read, record_write, output_write):
                os.close(fd)

        os.set_blocking(job_write, False)
        self.open_fds = {record_read, output_read}
        self.job_write: int | None = job_write
        try:
            self._loop(record_read, output_read)
        except BaseException:
            # An interrupt in the parent (Ctrl-C in a notebook) must not leave the job running.
            if not self.ended:
                self._kill_job()
            raise
        finally:
            for fd in [*self.open_fds, *([self.job_write] if self.job_write is not None else [])]:
                os.close(fd)
        return self.result

    def _loop(self, record_read: int, output_read: int) -> None:
        deadline_at = time.monotonic() + self.deadline
        give_up_at: float | None = None
        while self.open_fds or not self.ended:
            if self.early_verdict and self.records.done and not self.open_fds:
                return
            now = time.monotonic()
            if give_up_at is None and not self.ended and now >= deadline_at:
                self.result.timed_out = True
                self._kill_job()
                give_up_at = now + _GRACE_SECONDS
            if give_up_at is not None and now >= give_up_at:
                self._give_up()
                return

            control = self.worker.control.fileno()
            readable = list(self.open_fds)
            if not self.ended:
                readable += [control] if self.control_open else []
                readable += [self.worker.pidfd] if self.worker.mode == "oneshot" else []
            writable = [self.job_write] if self.job_write is not None else []
            wait_until = deadline_at if give_up_at is None else give_up_at
            ready_read, ready_write, _ = select.select(readable, writable, [], wait_until - now)
            if ready_write:
                self._write_job()
            for fd in ready_read:
                if fd == self.worker.pidfd and self.worker.mode == "oneshot":
                    self.ended = True
                    self.result.exit_code = self.worker.exit_code()
                elif fd == control:
                    self._on_control()
                    if self.ended and give_up_at is None:
                        give_up_at = time.monotonic() + _GRACE_SECONDS
                else:
                    self._read(fd, record_read)

    def _kill_job(self) -> None:
        """Kill every process of the job; the worker survives unless it runs the job itself."""
        logger.debug("job %s passed its %g s deadline; killing it", self.id[:8], self.deadline)
        if self.worker.mode == "oneshot":
            self.worker.terminate()
            return
        # The parent kills the job itself as well as asking the worker, because a job that
        # forks in a loop can starve the worker of CPU time. Its pid cannot be reused yet:
        # the worker has not reaped it, since the job has not reported an end.
        job_pid = self.result.notes.get("pid")
        if isinstance(job_pid, int) and job_pid in list_descendants(self.worker.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(job_pid, signal.SIGKILL)
        try:
            self.worker.send_message({"op": "kill", "id": self.id})
        except OSError:
            logger.warning("sandbox worker %d is gone; killing its processes", self.worker.pid)
            self.worker.kill()

    def _give_up(self) -> None:
        """Stop waiting because the pipes stayed open after the end or the worker fell silent."""
        if self.ended:
            logger.warning("a sandbox job's pipes stayed open after it ended; closing them")
            return
        logger.warning(
            "sandbox worker %d did not report a killed job; replacing it", self.worker.pid
        )
        self.result.worker_died = True
        self.worker.kill()

    def _write_job(self) -> None:
        assert self.job_write is not None
        try:
            written = os.write(self.job_write, self.pending[:_CHUNK])
        except BrokenPipeError:
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            os.close(self.job_write)
            self.job_write = None

    def _read(self, fd: int, record_read: int) -> None:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            os.close(fd)
            self.open_fds.discard(fd)
            return
        if fd == record_read:
            self.records.feed(chunk)
            return
        room = OUTPUT_LIMIT - len(self.result.output)
        self.result.output += chunk[:room]
        self.result.output_dropped += max(len(chunk) - room, 0)

    def _on_control(self) -> None:
        message = self.worker.receive(0)
        logger.debug("job %s: worker message %s", self.id[:8], message)
        if message is None:
            if "pid" not in self.result.notes:
                raise _WorkerUnavailable("the worker ended before it started the job")
            # A oneshot job closes its copy of the socket when it starts; its end is the
            # worker's exit, seen through the worker's pidfd.
            self.control_open = False
            if self.worker.mode != "oneshot":
                self.ended = True
                self.result.worker_died = True
            return
        if message.get("id") != self.id:
            return
        if "started" in message:
            self.result.notes["pid"] = message["started"]
        elif "ended" in message:
            self.ended = True
            self.result.exit_code = int(message["exit_code"])


def run_job_on(
    pool: WorkerPool, job: dict[str, Any], workdir: str, limits: JobLimits, deadline: float
) -> JobResult:
    """Run ``job`` on a worker from ``pool`` and return what it produced.

    A worker that cannot take the job is replaced once; a second failure raises
    ``SandboxError``.
    """
    for attempt in (1, 2):
        worker = pool.acquire()
        try:
            result = _JobRun(worker, job, deadline).run(workdir, limits)
        except _WorkerUnavailable as exc:
            pool.release(worker, healthy=False)
            if attempt == 2:
                raise SandboxError(f"no sandbox worker could take the job: {exc}") from exc
            logger.info("replacing a sandbox worker that could not take a job: %s", exc)
            continue
        pool.release(worker, healthy=not result.worker_died)
        result.notes["isolation"] = worker.info.get("isolation", "")
        return result
    raise AssertionError("unreachable")
