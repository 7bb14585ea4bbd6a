"""The Python API: ``generate_loss`` and the result object that every interface shares.

A runnable recipe, with the embedded model (the first call prepares it once)::

    import lossmagic

    result = lossmagic.generate_loss(
        "mean squared error loss for regression",
        inputs="predictions:float[N,1] targets:float[N,1]",
        max_iters=2,
    )
    print(result.status, result.record_path)
    if result.validated:
        loss_fn = result.load()
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossmagic.backends import Backend, create_backend
from lossmagic.exceptions import ConfigurationError
from lossmagic.inject import compile_validated
from lossmagic.loop import LoopSettings, run_loop
from lossmagic.progress import Event, ProgressCallback, emit
from lossmagic.records import IterationRecord, RunRecord, create_run_folder
from lossmagic.sandbox import Sandbox, shared_sandbox
from lossmagic.spec import parse_spec

__all__ = ["LossResult", "RunInterrupted", "clear_caches", "generate_loss", "get_backend"]

_BACKENDS: dict[tuple[str, str, str, str], Backend] = {}


@dataclass
class LossResult:
    """The outcome of one run: the validated code, or the last attempt and its error."""

    record: RunRecord

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def validated(self) -> bool:
        return self.record.status == "validated"

    @property
    def code(self) -> str:
        """Return the validated source, or the last candidate's source when none validated."""
        if self.record.code:
            return self.record.code
        attempts = [i.code for i in self.record.iterations if i.code]
        return attempts[-1] if attempts else ""

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def iterations(self) -> list[IterationRecord]:
        return self.record.iterations

    @property
    def model(self) -> str:
        return self.record.model

    @property
    def seconds(self) -> float:
        return self.record.seconds

    @property
    def message(self) -> str:
        return self.record.message

    @property
    def record_path(self) -> Path:
        return self.record.record_path

    def load(self) -> Any:
        """Define the validated function (or class) here and return it."""
        if not self.validated:
            raise ConfigurationError(
                f"the run for {self.name!r} did not validate ({self.message}).",
                "Inspect result.iterations, or generate again with more iterations "
                "or a larger model.",
            )
        return compile_validated(self.record.code, self.record.code_sha256, self.name)

    def to_json(self) -> dict[str, Any]:
        """Return the summary that ``lossmagic generate --json`` prints."""
        return {
            "status": "validated" if self.validated else "failed",
            "run_status": self.status,
            "message": self.message,
            "name": self.name,
            "task": self.task,
            "code": self.code,
            "model": self.model,
            "backend": self.record.backend,
            "seconds": round(self.seconds, 3),
            "record_path": str(self.record_path),
            "iterations": [i.to_dict() for i in self.iterations],
        }

    def __str__(self) -> str:
        head = (
            f"{self.name}: {self.status} after {self.record.rounds} round(s) and "
            f"{len(self.iterations)} candidate(s), {self.seconds:.1f} s"
        )
        return f"{head}\n{self.message}\nrecord: {self.record_path}"

    def __repr__(self) -> str:
        return f"<LossResult {self.name!r} {self.status} iterations={len(self.iterations)}>"

    def _repr_html_(self) -> str:
        from lossmagic.display import summary_html

        return summary_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from lossmagic.display import summary_text

        printer.text(repr(self) if cycle else summary_text(self))


class RunInterrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that carries the partial result of the interrupted run."""

    def __init__(self, result: LossResult) -> None:
        super().__init__(result.message)
        self.result = result


def get_backend(
    backend: str = "embedded",
    model: str | None = None,
    device: str = "auto",
    base_url: str | None = None,
) -> Backend:
    """Return a cached backend, so that a model loads once per process."""
    key = (backend, model or "", device, base_url or "")
    if key not in _BACKENDS:
        _BACKENDS[key] = create_backend(backend, model=model, device=device, base_url=base_url)
    return _BACKENDS[key]


def clear_caches() -> None:
    """Unload every cached model and free the memory it held."""
    for backend in _BACKENDS.values():
        backend.close()
    _BACKENDS.clear()


def generate_loss(
    task: str,
    *,
    inputs: str | None = None,
    name: str = "loss_fn",
    backend: str | Backend = "embedded",
    model: str | None = None,
    device: str = "auto",
    base_url: str | None = None,
    settings: LoopSettings | None = None,
    runs_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    sandbox: Sandbox | None = None,
) -> LossResult:
    """Generate and validate a loss function for ``task``; see the module docstring."""
    if not task or not task.strip():
        raise ConfigurationError(
            "the task is empty.",
            "Describe the loss in plain words, for example 'focal loss with gamma 2'.",
        )
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigurationError(
            f"invalid function name {name!r}.", "Use a Python identifier such as loss_fn."
        )
    settings = settings or LoopSettings()
    if settings.max_iters < 1:
        raise ConfigurationError(f"invalid max_iters {settings.max_iters}.", "Use 1 or more.")
    spec = parse_spec(inputs)
    # The folder is created before the model loads, so a bad runs folder fails at once.
    folder = create_run_folder(task, runs_dir)

    chosen = (
        backend if isinstance(backend, Backend) else get_backend(backend, model, device, base_url)
    )
    active_sandbox = sandbox or shared_sandbox(settings.timeout)
    # The worker starts in the background, so its start overlaps loading the model.
    active_sandbox.start()
    chosen.prepare(progress)

    record = RunRecord(
        task=task.strip(),
        name=name,
        spec=str(spec),
        backend=chosen.name,
        model=chosen.model,
        settings=settings.to_dict(),
        folder=str(folder),
    )
    try:
        run_loop(record, spec, chosen, active_sandbox, settings, progress)
    except KeyboardInterrupt as exc:
        raise RunInterrupted(LossResult(record)) from exc

    result = LossResult(record)
    emit(progress, Event("done", record.message, data={"result": result}))
    return result
