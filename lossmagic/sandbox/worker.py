"""The warm worker: a process that imports PyTorch once and starts each job from that state.

Run as ``python -m lossmagic.sandbox.worker --control FD``. The parent sends jobs over the
Unix ``SOCK_SEQPACKET`` socket FD, each with three file descriptors: the read end of the
job's input pipe, the write end of its record pipe and the write end of its output pipe.
The worker replies with JSON messages: ``ready`` once, then ``started`` and ``ended`` for
each job.

Two modes:

- ``fork`` (CPU jobs): the worker never runs a tensor operation itself and forks every job
  into a new PID namespace, so jobs start in milliseconds and cannot affect each other.
- ``oneshot`` (CUDA jobs): CUDA cannot be used in a process forked from one that already
  initialized it, so each job runs inside a freshly spawned worker, which exits after it.

Before it runs candidate code, the job process starts its own session, moves its pipes
to descriptors 0 to 3, enters its temporary directory with a scrubbed environment, and
applies the resource limits, the Landlock rules and a seccomp filter that keeps it from
starting processes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import select
import signal
import socket
import sys
import tempfile
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

from lossmagic.sandbox import isolation
from lossmagic.sandbox.limits import JobLimits, apply_limits

__all__ = ["main"]

logger = logging.getLogger(__name__)

MESSAGE_BYTES = 64 * 1024

_JOB_FD, _OUTPUT_FD, _RECORD_FD = 0, 1, 3


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    control.send(json.dumps(message).encode())


def job_environment(workdir: str) -> dict[str, str]:
    """Return the scrubbed environment of a job: no secrets, home and temp in its directory."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
    }


@dataclass
class _Job:
    id: object
    pid: int
    pidfd: int


@dataclass
class _Spare:
    """A job process forked in advance, waiting on ``channel`` for its job."""

    pid: int
    pidfd: int
    channel: socket.socket


class _Worker:
    def __init__(self, control: socket.socket, mode: str, device: str) -> None:
        self.control = control
        self.mode = mode
        self.device = device
        self.state = isolation.Isolation()
        self.readable: list[str] = []
        self.jobs: dict[int, _Job] = {}
        self.landlock = False
        self.seccomp = False
        self.spare: _Spare

    def prepare(self, namespaces: bool) -> None:
        """Enter the namespaces, then import what every job needs."""
        if namespaces:
            isolation.enter_user_namespace(self.state)
        else:
            self.state.missing.append("namespaces are turned off")
        self.readable = isolation.default_readable_paths()
        self._probe_confinement()

        if not namespaces:
            isolation.set_subreaper()
        elif self.mode == "oneshot":
            self._enter_own_pid_namespace()
        else:
            isolation.set_subreaper()
            try:
                pid, pidfd = isolation.clone_into_pid_namespace()
            except OSError as exc:
                self.state.missing.append(
                    f"no PID namespace per job ({exc.strerror}), so jobs are tracked "
                    "through the process tree"
                )
            else:
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
                os.close(pidfd)
                self.state.pid_namespace = True

        # Imported here, after the namespaces, because unshare needs a single thread.
        import torch

        import lossmagic.sandbox.child  # noqa: F401 - warm the imports of every job

        torch.set_num_threads(1)
        if self.device.startswith("cuda"):
            # NOTE: the CUDA path (this call, the NVIDIA device rules in Landlock and the device
            # wrapper in child.py) has not run on a GPU; CPU tests cover the oneshot mode only.
            torch.cuda.init()  # type: ignore[no-untyped-call]

    def _probe_confinement(self) -> None:
        """Try Landlock and the seccomp filter in a throwaway child; keep the layers that work.

        A layer that failed in every job would fail every candidate, so a layer the kernel
        rejects is left out and named in the isolation report instead.
        """
        abi = isolation.landlock_abi()
        for layer in ("landlock", "seccomp"):
            if layer == "landlock" and not abi:
                continue
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    if layer == "landlock":
                        isolation.restrict_filesystem(abi, tempfile.gettempdir(), self.readable)
                    else:
                        isolation.deny_new_processes()
                    code = 0
                finally:
                    os._exit(code)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0:
                setattr(self, layer, True)

        self.state.landlock_abi = abi if self.landlock else 0
        if not self.landlock:
            self.state.missing.append(
                "no Landlock, so only the static screen keeps jobs from files outside "
                "their directory and from TCP"
            )
        if not self.seccomp:
            self.state.missing.append(
                "no seccomp filter, so jobs can start processes; the process tree still bounds them"
            )

    def _enter_own_pid_namespace(self) -> None:
        """Continue as process 1 of a new PID namespace; the original process only waits."""
        try:
            pid, pidfd = isolation.clone_into_pid_namespace()
        except OSError as exc:
            self.state.missing.append(
                f"no PID namespace ({exc.strerror}), so jobs are tracked through the process tree"
            )
            isolation.set_subreaper()
            return

        if pid:
            os.close(pidfd)
            self.control.close()
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else min(code, 255))
        isolation.set_parent_death_signal()
        self.state.pid_namespace = True

    def serve(self) -> None:
        _send(
            self.control,
            {
                "ready": True,
                "pid": os.getpid(),
                "isolation": self.state.describe(),
                "network_namespace": self.state.network_namespace,
                "pid_namespace": self.state.pid_namespace,
                "landlock_abi": self.state.landlock_abi,
            },
        )
        if self.mode == "oneshot":
            message, fds = self._receive_job(self.control)
            _send(self.control, {"id": message.get("id"), "started": isolation.host_pid()})
            self._enter_job(message, fds)
        self._serve_forked_jobs()

    def _receive_job(self, channel: socket.socket) -> tuple[dict[str, Any], list[int]]:
        """Return the next job message and its descriptors; exit when the parent is gone."""
        while True:
            try:
                payload, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 3)
            except ConnectionError:
                payload, fds = b"", []
            if not payload:
                self._stop()
            message = json.loads(payload)
            if message.get("op") == "job" and len(fds) == 3:
                return message, fds
            for fd in fds:
                os.close(fd)
            if message.get("op") == "kill":
                self._kill(message.get("id"))

    def _serve_forked_jobs(self) -> None:
        """Dispatch each job to a spare job process forked in advance, then fork the next spare.

        Forking ahead keeps the fork off the time of a validation. Several jobs may be alive
        at once while finished ones exit; without PID namespaces the parent waits for each
        job to end before it sends the next, so the leftovers of each job can be identified.
        """
        self.spare = self._fork_spare()
        while True:
            control = self.control.fileno()
            readable, _, _ = select.select([control, self.spare.pidfd, *self.jobs], [], [])
            if control in readable:
                self._on_control()
            for pidfd in readable:
                if pidfd in self.jobs:
                    self._on_job_end(pidfd)
            if self.spare.pidfd in readable:
                logger.warning("a spare job process ended unexpectedly; forking another")
                os.waitpid(self.spare.pid, 0)
                self._close_spare()
                self.spare = self._fork_spare()

    def _on_control(self) -> None:
        try:
            payload, fds, _, _ = socket.recv_fds(self.control, MESSAGE_BYTES, 3)
        except ConnectionError:
            payload, fds = b"", []
        if not payload:
            self._stop()
        message = json.loads(payload)
        if message.get("op") == "kill":
            self._kill(message.get("id"))
        elif message.get("op") == "job" and len(fds) == 3:
            spare = self.spare
            socket.send_fds(spare.channel, [payload], fds)
            for fd in fds:
                os.close(fd)
            self.jobs[spare.pidfd] = _Job(message.get("id"), spare.pid, spare.pidfd)
            self._close_spare()
            _send(self.control, {"id": message.get("id"), "started": spare.pid})
            self.spare = self._fork_spare()
        else:
            for fd in fds:
                os.close(fd)
            _send(self.control, {"error": f"invalid message {message.get('op')!r}"})

    def _on_job_end(self, pidfd: int) -> None:
        job = self.jobs.pop(pidfd)
        _, status = os.waitpid(job.pid, 0)
        os.close(pidfd)
        self._kill_leftovers()
        _send(
            self.control,
            {"id": job.id, "ended": job.pid, "exit_code": os.waitstatus_to_exitcode(status)},
        )

    def _kill(self, job_id: object) -> None:
        for job in self.jobs.values():
            if job.id == job_id:
                signal.pidfd_send_signal(job.pidfd, signal.SIGKILL)

    def _kill_leftovers(self) -> None:
        """Kill what a job left behind; only needed without PID namespaces.

        The worker is a subreaper, so a job's orphans become its children. Every process
        under the worker except the spare and running jobs is such a leftover.
        """
        if self.state.pid_namespace:
            return
        keep = {self.spare.pid, *(job.pid for job in self.jobs.values())}
        for pid in isolation.list_descendants(os.getpid()):
            if pid not in keep:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0 or pid in keep:
                return

    def _fork_spare(self) -> _Spare:
        worker_end, job_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if self.state.pid_namespace:
            pid, pidfd = isolation.clone_into_pid_namespace()
        else:
            pid = os.fork()
            pidfd = os.pidfd_open(pid) if pid else -1
        if pid == 0:
            worker_end.close()
            self.control.close()
            self.jobs.clear()
            self.mode = "spare"
            os.setsid()
            isolation.set_parent_death_signal()
            message, fds = self._receive_job(job_end)
            self._enter_job(message, fds)
        job_end.close()
        return _Spare(pid, pidfd, worker_end)

    def _close_spare(self) -> None:
        self.spare.channel.close()

    def _stop(self) -> NoReturn:
        """Kill every job and exit: the parent closed the control socket."""
        if self.mode == "spare":
            os._exit(0)
        for job in self.jobs.values():
            signal.pidfd_send_signal(job.pidfd, signal.SIGKILL)
        if self.mode == "fork":
            os.kill(self.spare.pid, signal.SIGKILL)
        os._exit(0)

    def _enter_job(self, message: dict[str, Any], fds: list[int]) -> NoReturn:
        """Confine this process as a job, run it and exit; never returns to the worker loop."""
        code = 70
        try:
            job_fd, record_fd, output_fd = fds
            for source, target in ((job_fd, _JOB_FD), (output_fd, _OUTPUT_FD)):
                os.dup2(source, target)
            os.dup2(output_fd, 2)
            os.dup2(record_fd, _RECORD_FD)
            os.closerange(_RECORD_FD + 1, 65536)
            sys.stdout = os.fdopen(_OUTPUT_FD, "w", buffering=1, closefd=False)
            sys.stderr = sys.stdout

            workdir = str(message["workdir"])
            os.chdir(workdir)
            os.environ.clear()
            os.environ.update(job_environment(workdir))
            cuda = self.device.startswith("cuda")
            apply_limits(JobLimits.from_dict(message.get("limits") or {}), address_space=not cuda)
            if self.state.landlock_abi:
                isolation.restrict_filesystem(
                    self.state.landlock_abi, workdir, self.readable, cuda=cuda
                )
            if self.seccomp:
                isolation.deny_new_processes()

            from lossmagic.sandbox.child import serve

            serve(_JOB_FD, _RECORD_FD)
            code = 0
            # Closing the pipes before exiting lets the parent judge the job without waiting
            # for the kernel to tear down this process's copy of the worker's memory.
            for fd in (_OUTPUT_FD, 2, _RECORD_FD):
                os.close(fd)
        except BaseException:  # noqa: BLE001 - the job process must never unwind into the worker
            traceback.print_exc()
        finally:
            os._exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description="lossmagic sandbox worker")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--mode", choices=("fork", "oneshot"), default="fork")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="", help="marks this worker's processes in ps output")
    parser.add_argument(
        "--no-namespaces", action="store_true", help="run jobs without Linux namespaces"
    )
    args = parser.parse_args()

    control = socket.socket(fileno=args.control)
    worker = _Worker(control, args.mode, args.device)
    try:
        worker.prepare(namespaces=not args.no_namespaces)
        worker.serve()
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise


if __name__ == "__main__":
    main()
