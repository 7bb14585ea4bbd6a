"""Measure one candidate validation through the warm sandbox worker and through a cold process.

Run from the repository root::

    python -m benchmarks.bench_sandbox [--warm-runs 40] [--cold-runs 8] [--pause 0.1]

Both paths run the same job, the contract checks without the semantic probes, on the
same candidates. The warm path is ``Sandbox.validate`` with its worker already started,
so each job forks from the worker into its namespaces and limits. It is timed twice.
Back to back, each job competes for the CPU with the exit of the previous job and the
fork of the next spare. Paced, ``--pause`` seconds pass between validations, as when the
model writes the next candidate in between. The cold path starts
``python -c`` per job, which imports PyTorch and lossmagic before it checks anything.
The script prints the median seconds per validation on each path and their ratio, all
measured in this one run, along with the checks that ran: other modules add checks, so
the figures hold for the checks listed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

from lossmagic.sandbox import Sandbox

CANDIDATES = [
    (
        "import torch\n\n\ndef loss_fn(predictions, targets):\n"
        "    return torch.mean((predictions - targets) ** 2)\n",
        "predictions:float[N,1] targets:float[N,1]",
    ),
    (
        "import torch.nn.functional as F\n\n\ndef loss_fn(logits, targets):\n"
        "    return F.cross_entropy(logits, targets)\n",
        "logits:float[N,C] targets:long[N]<C",
    ),
    (
        "import torch\n\n\ndef loss_fn(predictions, targets):\n"
        "    return torch.nn.functional.smooth_l1_loss(predictions, targets, beta=0.5)\n",
        "predictions:float[N,D] targets:float[N,D]",
    ),
]
OPTIONS = {"probes": False}

COLD_COMMAND = "import sys\nfrom lossmagic.sandbox.child import main\nmain()\n"


def run_warm(runs: int, pause: float) -> tuple[list[float], list[str]]:
    """Return the seconds of each warm validation and the names of the checks that ran."""
    with Sandbox(timeout=60) as sandbox:
        sandbox.start()
        for source, spec in CANDIDATES:
            report = sandbox.validate(source, "loss_fn", spec, options=OPTIONS)
            if not report.passed:
                raise SystemExit(f"warm-up candidate failed: {report.message or report.checks}")

        seconds = []
        names: list[str] = []
        for index in range(runs):
            time.sleep(pause)
            source, spec = CANDIDATES[index % len(CANDIDATES)]
            started = time.perf_counter()
            report = sandbox.validate(source, "loss_fn", spec, options=OPTIONS)
            seconds.append(time.perf_counter() - started)
            names = [check.name for check in report.checks]
        return seconds, names


def run_cold_once(source: str, spec: str) -> float:
    """Validate once in a fresh ``python -c`` process; return the seconds it took."""
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "source": source, "name": "loss_fn", "spec": spec, "options": OPTIONS}
    read_end, write_end = os.pipe()
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", COLD_COMMAND, str(write_end)],
        stdin=subprocess.PIPE,
        pass_fds=(write_end,),
        env=environment,
    )
    os.close(write_end)
    process.communicate(json.dumps(job).encode())
    with os.fdopen(read_end, encoding="utf-8") as records:
        done = any(json.loads(line).get("done") for line in records)
    elapsed = time.perf_counter() - started

    if not done or process.returncode != 0:
        raise SystemExit(f"cold validation failed with exit code {process.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm-runs", type=int, default=40, help="warm validations to time")
    parser.add_argument("--cold-runs", type=int, default=8, help="cold validations to time")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between paced warm validations"
    )
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    back_to_back, names = run_warm(args.warm_runs, 0.0)
    paced, _ = run_warm(args.warm_runs, args.pause)
    cold = [run_cold_once(*CANDIDATES[index % len(CANDIDATES)]) for index in range(args.cold_runs)]

    cold_median = statistics.median(cold)
    print(f"checks per validation: {', '.join(names)}")
    _print_line("cold python -c", cold)
    for label, warm in (("warm, back to back", back_to_back), ("warm, paced", paced)):
        _print_line(label, warm)
        print(f"  ratio cold / warm: {cold_median / statistics.median(warm):.1f}x")


def _print_line(label: str, seconds: list[float]) -> None:
    print(
        f"{label}: median {statistics.median(seconds) * 1000:.1f} ms over {len(seconds)} "
        f"validations (min {min(seconds) * 1000:.1f}, max {max(seconds) * 1000:.1f})"
    )


if __name__ == "__main__":
    main()
