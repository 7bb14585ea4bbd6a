"""Worker processes from the parent's side: start, health, replacement and shutdown."""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Any, Literal

import lossmagic
from lossmagic.exceptions import SandboxError
from lossmagic.sandbox.isolation import kill_descendants
from lossmagic.sandbox.worker import MESSAGE_BYTES

__all__ = ["WorkerMode", "WorkerPool", "WorkerProcess", "find_tagged_processes"]

logger = logging.getLogger(__name__)

WorkerMode = Literal["fork", "oneshot"]

STARTUP_TIMEOUT = 120.0
"""Seconds a worker may take to import PyTorch and report ready."""

_logged_isolation: set[str] = set()


def _worker_environment(device: str) -> dict[str, str]:
    """Return the worker's environment: the variables Python and CUDA need, nothing else."""
    package_root = str(Path(lossmagic.__file__).resolve().parent.parent)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "PYTHONPATH": package_root,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    if device.startswith("cuda"):
        for name in ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "CUDA_HOME"):
            if name in os.environ:
                environment[name] = os.environ[name]
            else:
                environment.pop(name, None)
    return environment


def find_tagged_processes(tags: set[str]) -> list[int]:
    """Return the pids whose command line carries one of the worker ``tags``.

    Forked jobs keep their worker's command line, so this also finds a job process that
    left the worker's process tree.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                arguments = handle.read().split(b"\0")
        except OSError:
            continue
        if b"--tag" in arguments:
            tag = arguments[arguments.index(b"--tag") + 1 :][:1]
            if tag and tag[0].decode("ascii", "replace") in tags:
                found.append(int(entry))
    return sorted(found)


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        kill_descendants(process.pid, include_root=True)
    process.wait()


class WorkerProcess:
    """One spawned worker and the parent's end of its control socket."""

    def __init__(self, mode: WorkerMode, device: str, *, namespaces: bool = True) -> None:
        self.mode = mode
        self.device = device
        self.info: dict[str, Any] = {}
        self.tag = secrets.token_hex(6)
        # Kept open for the worker's lifetime, so that a failed start can show its traceback.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

        parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [
            sys.executable,
            "-m",
            "lossmagic.sandbox.worker",
            "--control",
            str(worker_end.fileno()),
            "--mode",
            mode,
            "--device",
            device,
            "--tag",
            self.tag,
        ]
        if not namespaces:
            command.append("--no-namespaces")
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                pass_fds=(worker_end.fileno(),),
                env=_worker_environment(device),
                cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
        finally:
            worker_end.close()
        self.control = parent_end
        # Readable once the worker has exited, which is how the parent detects the end of a
        # oneshot job.
        self.pidfd = os.pidfd_open(self.process.pid)
        self._finalizer = weakref.finalize(self, _kill_tree, self.process)
        logger.debug("started a %s sandbox worker, pid %d", mode, self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        """Return the worker's ``ready`` message; raise ``SandboxError`` if it does not come."""
        if self.info:
            return self.info
        message = self.receive(timeout)
        if message is None or not message.get("ready"):
            self.kill()
            self._stderr.seek(0)
            detail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
            problem = "the sandbox worker did not start"
            if message is None and self.process.returncode is None:
                problem += f" within {timeout:g} s"
            raise SandboxError(f"{problem} (exit code {self.process.returncode}): {detail}")

        self.info = message
        logger.debug(
            "sandbox worker %d ready: network namespace %s, PID namespace %s, Landlock ABI %s",
            self.pid,
            message.get("network_namespace"),
            message.get("pid_namespace"),
            message.get("landlock_abi"),
        )
        description = str(message.get("isolation", ""))
        if description and description not in _logged_isolation:
            _logged_isolation.add(description)
            logger.warning("%s", description)
        return message

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """Return the next message, or None at end of stream or after ``timeout`` seconds."""
        readable, _, _ = select.select([self.control], [], [], max(timeout, 0.0))
        if not readable:
            return None
        try:
            payload = self.control.recv(MESSAGE_BYTES)
        except ConnectionError:
            return None
        if not payload:
            return None
        message = json.loads(payload)
        return message if isinstance(message, dict) else None

    def send_job(self, message: dict[str, Any], fds: list[int]) -> None:
        socket.send_fds(self.control, [json.dumps(message).encode()], fds)

    def send_message(self, message: dict[str, Any]) -> None:
        self.control.send(json.dumps(message).encode())

    def exit_code(self, timeout: float = 2.0) -> int | None:
        """Wait for the worker to exit and return its exit code (negative for a signal)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        # A oneshot worker's outer process exits with 128 + N when its job died of signal N.
        if self.mode == "oneshot" and code > 128:
            return 128 - code
        return code

    def terminate(self) -> None:
        """Kill the worker and every process under it, keeping the control socket to read."""
        self._finalizer()

    def kill(self) -> None:
        """Kill the worker and every process under it, and close the control socket."""
        self._finalizer()
        self.control.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self._stderr.close()


class WorkerPool:
    """The workers that run the jobs of one device.

    In ``fork`` mode one worker runs every job and is replaced when it dies. In
    ``oneshot`` mode each job takes a fresh worker and a spare is started right away, so the
    next job finds one ready.
    """

    def __init__(
        self,
        device: str,
        mode: WorkerMode | None = None,
        tags: set[str] | None = None,
        *,
        namespaces: bool = True,
    ) -> None:
        self.device = device
        self.namespaces = namespaces
        self.mode: WorkerMode = mode or ("oneshot" if device.startswith("cuda") else "fork")
        self.tags = tags if tags is not None else set()
        self._worker: WorkerProcess | None = None

    def start(self) -> None:
        """Start a worker if none is running, without waiting for it to be ready."""
        if self._worker is None or not self._worker.alive():
            if self._worker is not None:
                logger.warning(
                    "sandbox worker %d died (exit code %s); starting a new one",
                    self._worker.pid,
                    self._worker.process.returncode,
                )
                self._worker.kill()
            self._worker = self._spawn()

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(self.mode, self.device, namespaces=self.namespaces)
        self.tags.add(worker.tag)
        return worker

    def worker_pid(self) -> int | None:
        """Return the pid of the current worker, or None when none is running."""
        return self._worker.pid if self._worker is not None and self._worker.alive() else None

    def acquire(self) -> WorkerProcess:
        """Return a ready worker for the next job."""
        self.start()
        assert self._worker is not None
        worker = self._worker
        started = time.perf_counter()
        worker.wait_ready()
        logger.debug("worker %d ready after %.2f s", worker.pid, time.perf_counter() - started)
        if self.mode == "oneshot":
            self._worker = self._spawn()
        return worker

    def release(self, worker: WorkerProcess, *, healthy: bool) -> None:
        """Return ``worker`` after a job; kill it if it is spent or unhealthy."""
        if self.mode == "oneshot" or not healthy:
            worker.kill()
            if worker is self._worker:
                self._worker = None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
