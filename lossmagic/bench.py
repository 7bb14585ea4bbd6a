"""``lossmagic bench``: run a strategy over a suite of tasks and score it against references.

A suite is a JSON list of objects ``{"id", "task", "inputs", "name"?, "reference"?}``.
``inputs`` is an input spec, ``name`` defaults to ``loss_fn``, and ``reference`` is the
path (relative to the suite file) of a ``.py`` file that defines the reference function
under the same name. Each task runs once per seed; its run record lands in
``OUT/runs/``. A validated candidate *agrees* when, on the contract checks' ordinary
trial inputs, it is within ``1e-4`` (absolute, plus ``1e-4`` relative) of the reference.
``OUT/summary.json`` and ``OUT/summary.md`` hold the rates and the time split.

The comparison runs both functions in a separate Python process with a deadline,
because candidate code is untrusted.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from lossmagic.api import generate_loss, get_backend
from lossmagic.backends.base import Backend
from lossmagic.exceptions import ConfigurationError, LossMagicError
from lossmagic.loop import LoopSettings
from lossmagic.progress import Event, ProgressCallback
from lossmagic.records import IterationRecord, RunRecord
from lossmagic.spec import parse_spec
from lossmagic.strategies.common import TESTS_FILENAME

__all__ = [
    "AGREEMENT_TOLERANCE",
    "BenchRun",
    "SuiteTask",
    "bench_command",
    "compare_to_reference",
    "load_suite",
    "run_bench",
    "summarize",
]

logger = logging.getLogger(__name__)

AGREEMENT_TOLERANCE = 1e-4
COMPARE_TIMEOUT = 60.0
SERVER_BACKENDS = ("openai",)
SERVER_WORKERS = 4


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite, with its reference source when it has one."""

    id: str
    task: str
    inputs: str
    name: str = "loss_fn"
    reference: str = ""
    """The reference function's source (read from the file the suite names)."""


@dataclass
class BenchRun:
    """The outcome of one task and seed."""

    id: str
    seed: int
    status: str
    validated: bool
    agreement: bool | None
    max_difference: float | None
    iterations: int
    tokens: int
    prompt_tokens: int
    seconds: float
    generation_seconds: float
    validation_seconds: float
    record: str
    message: str = ""
    comparison_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Progress:
    """Lines on standard error: one per finished run, with the running totals."""

    total: int
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, run: BenchRun) -> None:
        with self.lock:
            self.done += 1
            if run.agreement:
                verdict = "agrees"
            elif run.validated and run.agreement is None:
                verdict = "no reference"
            elif run.validated:
                verdict = f"disagrees (max difference {run.max_difference})"
            else:
                verdict = "not validated"
            typer.echo(
                f"[{self.done}/{self.total}] {run.id} seed {run.seed}: {run.status}, {verdict}; "
                f"{run.iterations} iteration(s), {run.tokens} tokens, {run.seconds:.0f} s",
                err=True,
            )


def load_suite(path: Path) -> list[SuiteTask]:
    """Read and check a suite file; raise ConfigurationError naming the offending entry."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read suite {str(path)!r}: {exc.strerror}.") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"suite {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}.",
            "Write a JSON list of objects with id, task and inputs.",
        ) from None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(
            f"suite {str(path)!r} does not hold a non-empty JSON list.",
            'Write it as [{"id": "mse", "task": "...", "inputs": "..."}].',
        )

    tasks: list[SuiteTask] = []
    for position, entry in enumerate(entries):
        tasks.append(_suite_task(path, position, entry))
    ids = [task.id for task in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigurationError(
            f"suite {str(path)!r} repeats the id(s) {', '.join(duplicates)}.",
            "Give every task a unique id.",
        )
    return tasks


def _suite_task(path: Path, position: int, entry: object) -> SuiteTask:
    where = f"entry {position} of suite {str(path)!r}"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} is not a JSON object.")
    missing = [key for key in ("id", "task", "inputs") if not isinstance(entry.get(key), str)]
    if missing:
        raise ConfigurationError(
            f"{where} lacks the string field(s) {', '.join(missing)}.",
            "Give each task an id, a task text and an input spec.",
        )
    parse_spec(entry["inputs"])
    name = entry.get("name", "loss_fn")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigurationError(f"{where} has an invalid name {name!r}.", "Use an identifier.")

    reference = ""
    if entry.get("reference"):
        file = path.parent / str(entry["reference"])
        try:
            reference = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{where} names the reference {str(file)!r}, which cannot be read: {exc.strerror}.",
                "Give the path of a .py file relative to the suite file.",
            ) from None
    return SuiteTask(entry["id"], entry["task"], entry["inputs"], name, reference)


def compare_to_reference(
    code: str, reference: str, name: str, spec: str, seed: int
) -> tuple[bool, float, str]:
    """Compare a candidate with its reference in a child process.

    Return whether they agree within the tolerance, the maximum absolute difference,
    and an error message when the comparison itself failed (then they do not agree).
    """
    job = json.dumps(
        {"code": code, "reference": reference, "name": name, "spec": spec, "seed": seed}
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lossmagic.bench"],
            input=job,
            capture_output=True,
            text=True,
            timeout=COMPARE_TIMEOUT,
            env=environment,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return False, float("inf"), f"the comparison timed out after {COMPARE_TIMEOUT:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return False, float("inf"), (done.stderr.strip().splitlines() or ["no output"])[-1]
    result = json.loads(lines[-1])
    if result.get("error"):
        return False, float("inf"), str(result["error"])
    difference = float(result["max_difference"])
    return bool(result["agree"]), difference, ""


def _compare_main() -> None:
    """Run one comparison job from standard input; print one JSON line (child side)."""
    import torch

    from lossmagic.spec import make_trial

    job = json.loads(sys.stdin.read())
    spec = parse_spec(job["spec"])

    def load(source: str, filename: str) -> Any:
        namespace: dict[str, Any] = {"__name__": "lossmagic_compare"}
        exec(compile(source, filename, "exec"), namespace)
        function = namespace[job["name"]]
        return function() if isinstance(function, type) else function

    worst = 0.0
    agree = True
    try:
        candidate = load(job["code"], "candidate.py")
        reference = load(job["reference"], "reference.py")
        for index, sizes in enumerate(spec.trial_sizes()):
            inputs = make_trial(spec, sizes, int(job["seed"]) + index)
            expected = reference(*[t.detach().clone() for t in inputs.values()])
            got = candidate(*[t.detach().clone() for t in inputs.values()])
            got_tensor = torch.as_tensor(got, dtype=torch.float64).detach()
            expected_tensor = torch.as_tensor(expected, dtype=torch.float64).detach()
            if got_tensor.shape != expected_tensor.shape:
                agree = False
                worst = float("inf")
                continue
            difference = float((got_tensor - expected_tensor).abs().max())
            worst = max(worst, difference)
            limit = AGREEMENT_TOLERANCE * (1 + float(expected_tensor.abs().max()))
            agree = agree and difference <= limit
    except Exception as exc:  # noqa: BLE001 - any failure of untrusted code is the result
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    print(json.dumps({"agree": agree, "max_difference": worst}))


def _record_costs(record: RunRecord) -> tuple[int, int, float, float]:
    """Return completion tokens, prompt tokens, generation and validation seconds."""
    tokens = sum(i.completion_tokens for i in record.iterations)
    prompt = sum(i.prompt_tokens for i in record.iterations)
    generation = sum(i.generation_seconds for i in record.iterations)
    validation = sum(i.validation_seconds for i in record.iterations)
    side_file = Path(record.folder) / TESTS_FILENAME
    if side_file.is_file():
        for call in json.loads(side_file.read_text(encoding="utf-8")):
            tokens += int(call.get("completion_tokens", 0))
            prompt += int(call.get("prompt_tokens", 0))
            generation += float(call.get("seconds", 0.0))
    return tokens, prompt, generation, validation


def _iteration_lines(task: SuiteTask, seed: int) -> ProgressCallback:
    """Return a progress callback that prints each finished iteration of one run."""

    def report(event: Event) -> None:
        record = event.data.get("record")
        if event.kind == "iteration" and isinstance(record, IterationRecord):
            error = record.error["class"] if record.error else "passed"
            typer.echo(
                f"  {task.id} seed {seed} iteration {record.index}: {error}; {event.message}",
                err=True,
            )

    return report


def _run_one(
    task: SuiteTask,
    seed: int,
    backend: Backend,
    settings: LoopSettings,
    out: Path,
    verbose: bool,
) -> BenchRun:
    result = generate_loss(
        task.task,
        inputs=task.inputs,
        name=task.name,
        backend=backend,
        settings=replace(settings, seed=seed),
        runs_dir=out / "runs" / f"{task.id}-seed{seed}",
        progress=_iteration_lines(task, seed) if verbose else None,
    )
    record = result.record
    agreement: bool | None = None
    difference: float | None = None
    error = ""
    if result.validated and task.reference:
        agreement, difference, error = compare_to_reference(
            result.code, task.reference, task.name, record.spec, seed
        )
    tokens, prompt, generation, validation = _record_costs(record)
    return BenchRun(
        id=task.id,
        seed=seed,
        status=record.status,
        validated=result.validated,
        agreement=agreement,
        max_difference=difference,
        iterations=len(record.iterations),
        tokens=tokens,
        prompt_tokens=prompt,
        seconds=record.seconds,
        generation_seconds=generation,
        validation_seconds=validation,
        record=str(record.record_path),
        message=record.message,
        comparison_error=error,
    )


def run_bench(
    tasks: list[SuiteTask],
    backend: Backend,
    settings: LoopSettings,
    seeds: int,
    out: Path,
    workers: int = 1,
) -> dict[str, Any]:
    """Run every task once per seed, write the summary files and return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(task, seed) for task in tasks for seed in range(settings.seed, settings.seed + seeds)]
    progress = _Progress(len(jobs))
    started = time.perf_counter()

    finished: list[BenchRun] = []

    def run(job: tuple[SuiteTask, int]) -> BenchRun:
        task, seed = job
        bench_run = _run_one(task, seed, backend, settings, out, verbose=workers == 1)
        progress.finished(bench_run)
        with progress.lock:
            # A partial summary after every run keeps the results of an interrupted bench.
            finished.append(bench_run)
            partial = summarize(finished, settings, backend, time.perf_counter() - started)
            _write_summary(out, partial)
        return bench_run

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(run, jobs))
    else:
        runs = [run(job) for job in jobs]

    summary = summarize(runs, settings, backend, time.perf_counter() - started)
    _write_summary(out, summary)
    return summary


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")


def summarize(
    runs: list[BenchRun], settings: LoopSettings, backend: Backend, wall_seconds: float
) -> dict[str, Any]:
    """Return the summary: rates over runs, and seconds split by stage."""
    count = len(runs)
    validated = sum(1 for r in runs if r.validated)
    agreeing = sum(1 for r in runs if r.agreement)
    compared = [r for r in runs if r.validated and r.agreement is not None]
    false_accepted = sum(1 for r in compared if not r.agreement)
    generation = sum(r.generation_seconds for r in runs)
    validation = sum(r.validation_seconds for r in runs)
    return {
        "strategy": settings.strategy,
        "backend": backend.name,
        "model": backend.model,
        "settings": settings.to_dict(),
        "runs": [r.to_dict() for r in runs],
        "count": count,
        "validated_rate": validated / count if count else 0.0,
        "agreement_rate": agreeing / count if count else 0.0,
        "false_acceptance_rate": false_accepted / count if count else 0.0,
        "false_acceptances": false_accepted,
        "tokens": sum(r.tokens for r in runs),
        "seconds": {
            "total": wall_seconds,
            "generation": generation,
            "validation": validation,
            "other": max(sum(r.seconds for r in runs) - generation - validation, 0.0),
        },
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """Render the summary as a Markdown table with the headline rates above it."""
    seconds = summary["seconds"]
    lines = [
        f"# Bench: strategy {summary['strategy']}, {summary['backend']}:{summary['model']}",
        "",
        f"- runs: {summary['count']}",
        f"- validated rate: {summary['validated_rate']:.0%}",
        f"- agreement rate: {summary['agreement_rate']:.0%}",
        f"- false acceptance rate: {summary['false_acceptance_rate']:.0%} "
        f"({summary['false_acceptances']} run(s))",
        f"- seconds: {seconds['total']:.0f} in all; generation {seconds['generation']:.0f}, "
        f"validation {seconds['validation']:.0f}, other {seconds['other']:.0f}",
        "",
        "| task | seed | status | agrees | max difference | iterations | tokens | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in summary["runs"]:
        agrees = {True: "yes", False: "no", None: "-"}[run["agreement"]]
        difference = "-" if run["max_difference"] is None else f"{run['max_difference']:.2g}"
        lines.append(
            f"| {run['id']} | {run['seed']} | {run['status']} | {agrees} | {difference} | "
            f"{run['iterations']} | {run['tokens']} | {run['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def bench_command(
    suite: Annotated[Path, typer.Argument(help="Suite JSON file: a list of tasks.")],
    strategy: Annotated[str, typer.Option(help="lossmagic or baseline.")] = "lossmagic",
    backend: Annotated[str, typer.Option(help="embedded, transformers or openai.")] = "embedded",
    model: Annotated[str | None, typer.Option(help="Model path or id for the backend.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    base_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")
    ] = None,
    candidates: Annotated[
        int, typer.Option(min=1, help="Candidates sampled per round (lossmagic strategy).")
    ] = 1,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per task, counting up from --seed.")] = 1,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    max_iters: Annotated[
        int, typer.Option(min=1, help="Rounds per run (candidates for the baseline).")
    ] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=16, help="Token limit per candidate.")] = 384,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds allowed per validation job.")
    ] = 60.0,
    retrieval: Annotated[
        bool, typer.Option(help="Use the catalog: worked examples and the reference cross-check.")
    ] = True,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated task ids to run (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for run records and summaries.")] = Path(
        "bench-out"
    ),
) -> None:
    """Run a strategy over a suite and score validated losses against references."""
    try:
        suite_tasks = load_suite(suite)
        if tasks:
            requested = [t.strip() for t in tasks.split(",") if t.strip()]
            unknown = sorted(set(requested) - {t.id for t in suite_tasks})
            if unknown:
                raise ConfigurationError(
                    f"the suite has no task(s) {', '.join(unknown)}.",
                    "Pass ids from the suite file to --tasks.",
                )
            suite_tasks = [t for t in suite_tasks if t.id in requested]
        settings = LoopSettings(
            max_iters=max_iters,
            seed=seed,
            max_new_tokens=max_new_tokens,
            timeout=timeout,
            strategy=strategy,
            candidates=candidates,
            retrieval=retrieval,
        )
        settings.check()
        chosen = get_backend(backend, model, device, base_url)
        chosen.prepare()
        workers = SERVER_WORKERS if backend in SERVER_BACKENDS else 1
        summary = run_bench(suite_tasks, chosen, settings, seeds, out, workers)
    except LossMagicError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished runs keep their records under OUT/runs", err=True)
        raise typer.Exit(130) from None

    typer.echo(summary_markdown(summary))
    typer.echo(f"wrote {out / 'summary.json'} and {out / 'summary.md'}", err=True)


if __name__ == "__main__":
    _compare_main()
