"""The sandbox side of a validation job: compile the candidate, run the checks, report.

The warm worker calls ``serve`` in each forked job process. ``python -m
lossmagic.sandbox.child FD`` runs one job in a fresh interpreter instead (the cold path
that the benchmark compares against): the job arrives as JSON on standard input.

Each check result goes out as one JSON line tagged with the job's nonce, and a final
``{"done": true, "count": N}`` record marks a job that finished with N check records.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import IO, Any

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import CANDIDATE_FILENAME, describe_exception
from lossmagic.checks.runner import run_candidate_checks
from lossmagic.spec import parse_spec

__all__ = ["install_introspection_guard", "main", "run_job", "serve"]

Send = Callable[[dict[str, Any]], None]


def _load_candidate(source: str, name: str) -> tuple[Any, list[CheckResult]]:
    """Execute the candidate's module code and return its function and the load checks."""
    try:
        code = compile(source, CANDIDATE_FILENAME, "exec")
    except SyntaxError as exc:
        evidence = {"error": {"type": "SyntaxError", "message": str(exc.msg), "line": exc.lineno}}
        return None, [
            CheckResult(
                "compiles", "fail", f"SyntaxError at line {exc.lineno}: {exc.msg}", evidence
            )
        ]

    namespace: dict[str, Any] = {"__name__": "lossmagic_candidate"}
    try:
        exec(code, namespace)
    except Exception as exc:  # noqa: BLE001 - errors at import time are evidence
        error = describe_exception(exc)
        message = f"{error['type']} while loading the module: {error['message']}"
        return None, [CheckResult("compiles", "fail", message, {"error": error})]

    results = [CheckResult("compiles", "pass", "the module loads")]
    function = namespace.get(name)
    if not callable(function):
        message = f"the module defines no callable named {name!r}"
        results.append(CheckResult("defines", "fail", message))
        return None, results

    if isinstance(function, type):
        # Module style: the loss is an nn.Module class, checked through an instance.
        try:
            function = function()
        except Exception as exc:  # noqa: BLE001 - the constructor's error is evidence
            error = describe_exception(exc)
            message = f"{name}() cannot be built without arguments: {error['message']}"
            results.append(CheckResult("defines", "fail", message, {"error": error}))
            return None, results
    results.append(CheckResult("defines", "pass", f"defines {name!r}"))
    return function, results


def _on_device(function: Any, device: str) -> Any:
    """Wrap ``function`` so it runs on ``device`` while the checks keep their CPU tensors.

    ``Tensor.to`` is differentiable, so gradients still reach the CPU inputs.
    """
    import torch

    if isinstance(function, torch.nn.Module):
        function = function.to(device)

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        return function(*(a.to(device) if isinstance(a, torch.Tensor) else a for a in args))

    return call


def run_job(job: dict[str, Any], send: Send) -> int:
    """Run one validation job, sending each check result as soon as it exists.

    Returns the number of check records sent.
    """
    function, results = _load_candidate(job["source"], job["name"])
    for result in results:
        send({"check": result.to_dict()})
    if function is None:
        return len(results)

    device = str(job.get("device") or "cpu")
    if device != "cpu":
        function = _on_device(function, device)

    spec = parse_spec(job["spec"])
    count = len(results)
    checks = run_candidate_checks(
        function, spec, seed=int(job.get("seed", 0)), options=job.get("options") or {}
    )
    for result in checks:
        send({"check": result.to_dict()})
        count += 1
    return count


# Audit events that reach interpreter internals (frames, every object, raw memory) and the
# number of innermost frames searched for candidate code when one fires. Frame events are
# checked against the direct caller only, because typing and PyTorch call sys._getframe
# themselves on behalf of ordinary code.
_GUARDED_EVENTS = {
    "sys._getframe": 1,
    "sys._current_frames": 1,
    "sys._current_exceptions": 1,
    "object.__getattr__": 1,
    "gc.get_referrers": 4,
    "gc.get_referents": 4,
    "gc.get_objects": 4,
    "sys.settrace": 4,
    "sys.setprofile": 4,
    "ctypes.dlopen": 4,
    "ctypes.dlsym": 4,
    "ctypes.addressof": 4,
    "ctypes.cdata": 4,
}


def install_introspection_guard() -> None:
    """Raise ``RuntimeError`` when candidate code walks frames, lists objects or loads C code.

    Records carry a nonce that lives in this process, so code that could walk up to the
    sending function could forge a verdict. The static screen rejects such code before it
    runs, and this audit hook is the second line. Audit hooks cannot be removed.
    """
    state = threading.local()

    def hook(event: str, args: tuple[Any, ...]) -> None:
        depth = _GUARDED_EVENTS.get(event)
        if depth is None or getattr(state, "active", False):
            return
        state.active = True
        try:
            frame: types.FrameType | None = sys._getframe(1)
            for _ in range(depth):
                if frame is None:
                    break
                if frame.f_code.co_filename == CANDIDATE_FILENAME:
                    raise RuntimeError(f"{event} is not allowed in a loss function")
                frame = frame.f_back
        finally:
            state.active = False

    sys.addaudithook(hook)


def _sender(channel: IO[str], nonce: str) -> Send:
    def send(record: dict[str, Any]) -> None:
        channel.write(json.dumps({"nonce": nonce, **record}, default=str) + "\n")
        channel.flush()

    return send


def serve(job_fd: int, record_fd: int) -> None:
    """Read one job from ``job_fd``, run it and write its records to ``record_fd``."""
    with os.fdopen(job_fd, "r", encoding="utf-8") as job_file:
        job = json.loads(job_file.read())
    channel = os.fdopen(record_fd, "w", encoding="utf-8")
    send = _sender(channel, job["nonce"])
    install_introspection_guard()
    count = run_job(job, send)
    send({"done": True, "count": count})
    channel.close()


def main() -> None:
    """Run one job in this interpreter: the cold path, without the warm worker."""
    serve(sys.stdin.fileno(), int(sys.argv[1]))


if __name__ == "__main__":
    main()
