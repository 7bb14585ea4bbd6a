"""The sandbox side of a validation job: compile the candidate, run the checks, report.

Run as ``python -m lossmagic.sandbox.child FD``. The job arrives as JSON on standard
input; one JSON record per check goes to file descriptor FD, each tagged with the job's
nonce, and a final ``{"done": true}`` record marks a job that finished.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import CANDIDATE_FILENAME, describe_exception
from lossmagic.checks.runner import run_candidate_checks
from lossmagic.spec import parse_spec


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


def run_job(job: dict[str, Any], send: Any) -> None:
    """Run one validation job, sending each check result as soon as it exists."""
    function, results = _load_candidate(job["source"], job["name"])
    for result in results:
        send({"check": result.to_dict()})
    if function is None:
        return

    spec = parse_spec(job["spec"])
    checks = run_candidate_checks(
        function, spec, seed=int(job.get("seed", 0)), options=job.get("options") or {}
    )
    for result in checks:
        send({"check": result.to_dict()})


def main() -> None:
    channel: IO[str] = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    job = json.loads(sys.stdin.read())
    nonce = job["nonce"]

    def send(record: dict[str, Any]) -> None:
        channel.write(json.dumps({"nonce": nonce, **record}, default=str) + "\n")
        channel.flush()

    run_job(job, send)
    send({"done": True})
    channel.close()


if __name__ == "__main__":
    main()
