"""Start and stop ``transformers serve`` on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ServeProcess", "free_port"]


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """One ``transformers serve`` process pinned to a local model folder.

    The server is pinned to ``model_path``, so the model name in requests is that path.
    """

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        threads: int | None = 1,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_path = model_path
        self.log_path = log_path
        self.threads = threads
        """Torch threads of the server (``OMP_NUM_THREADS``); None keeps the environment's."""
        self.extra_args = extra_args
        """More ``transformers serve`` options, such as ``--continuous-batching``."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.model = str(model_path)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> None:
        """Start the server and wait until ``GET /health`` returns 200; raise when it does not."""
        executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
        if executable is None:
            raise RuntimeError("the transformers command is missing; install transformers[serving]")
        command = [
            executable, "serve", str(self.model_path),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--device", "cpu", "--log-level", "warning", *self.extra_args,
        ]
        env = dict(os.environ)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

        deadline = time.monotonic() + timeout
        health = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"transformers serve exited early:\n{self.log_tail()}")
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"transformers serve was not healthy in {timeout:g} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-20:])

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the server abruptly, as a crash or an out-of-memory kill would."""
        if self._process is not None and self.running:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server politely, then by force after 15 s."""
        if self._process is None or not self.running:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
