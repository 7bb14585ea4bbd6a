"""The generate → validate → classify → repair loop.

Each iteration builds its prompt fresh from the task (plus, for a repair, the last
attempt and its error), asks the backend for a candidate, extracts the function with
``ast``, saves the candidate in the run folder and validates it in the sandbox. The run
record is saved after every iteration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from lossmagic.backends.base import Backend, ChatRequest
from lossmagic.errors import ErrorClass, ErrorInfo, classify
from lossmagic.examples import pick_examples
from lossmagic.exceptions import ExtractionError
from lossmagic.extract import extract_definition
from lossmagic.progress import Event, ProgressCallback, emit
from lossmagic.prompts import (
    PromptParts,
    Style,
    build_generation_prompt,
    build_repair_prompt,
    stop_strings,
)
from lossmagic.records import IterationRecord, RunRecord, source_hash
from lossmagic.sandbox import Sandbox
from lossmagic.spec import InputSpec

__all__ = ["LoopSettings", "run_loop"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """Settings of one run; all of them are stored in the run record."""

    max_iters: int = 4
    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 384
    timeout: float = 60.0
    style: Style = "function"
    """``function`` for a plain function; ``module`` for an ``nn.Module`` class named by the run."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _next_prompt(
    record: RunRecord, spec: InputSpec, last: IterationRecord | None
) -> tuple[str, PromptParts]:
    examples = pick_examples(record.task, spec)
    style = record.settings.get("style", "function")
    if last is None or not last.code or last.error is None:
        kind = "generate" if last is None else "resample"
        return kind, build_generation_prompt(record.task, record.name, spec, examples, style)

    error = f"[{last.error['class']}] {last.error['message']}"
    prompt = build_repair_prompt(
        record.task, record.name, spec, last.code, error, examples=examples, style=style
    )
    return "repair", prompt


def _generate(
    name: str,
    backend: Backend,
    prompt: PromptParts,
    settings: LoopSettings,
    seed: int,
    iteration: IterationRecord,
    progress: ProgressCallback | None,
) -> bool:
    """Ask for a candidate and extract it into ``iteration``; return whether code was found."""
    prefill = prompt.prefill if backend.supports_prefill else ""
    request = ChatRequest(
        messages=prompt.messages,
        prefill=prefill,
        stop=stop_strings(prefill),
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=seed,
    )
    iteration.messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
    iteration.prefill = prefill

    def on_tokens(count: int) -> None:
        emit(progress, Event("tokens", count=count, iteration=iteration.index))

    started = time.perf_counter()
    completion = backend.complete(request, on_tokens)[0]
    iteration.generation_seconds = time.perf_counter() - started
    iteration.raw_output = completion.text
    iteration.prompt_tokens = completion.prompt_tokens
    iteration.completion_tokens = completion.completion_tokens

    try:
        extraction = extract_definition(
            prefill + completion.text, name, truncated=completion.finish_reason == "length"
        )
    except ExtractionError as exc:
        error_class = ErrorClass.SIGNATURE if "contains no" in exc.reason else ErrorClass.SYNTAX
        iteration.error = ErrorInfo(error_class, str(exc), "extraction").to_dict()
        return False

    iteration.code = extraction.code
    iteration.code_sha256 = source_hash(extraction.code)
    iteration.extraction_notes = list(extraction.notes)
    return True


def run_loop(
    record: RunRecord,
    spec: InputSpec,
    backend: Backend,
    sandbox: Sandbox,
    settings: LoopSettings,
    progress: ProgressCallback | None = None,
) -> RunRecord:
    """Run iterations until a candidate validates or ``settings.max_iters`` is reached."""
    started = time.perf_counter()
    last: IterationRecord | None = None

    try:
        for index in range(1, settings.max_iters + 1):
            kind, prompt = _next_prompt(record, spec, last)
            seed = settings.seed + index - 1
            iteration = IterationRecord(index=index, kind=kind, seed=seed)  # type: ignore[arg-type]
            record.iterations.append(iteration)

            emit(progress, Event("stage", f"generating ({kind})", index, settings.max_iters))
            if _generate(record.name, backend, prompt, settings, seed, iteration, progress):
                record.save_candidate(iteration)
                emit(progress, Event("stage", "validating", index, settings.max_iters))
                report = sandbox.validate(
                    iteration.code, record.name, str(spec), seed=settings.seed
                )
                iteration.checks = report.checks
                iteration.validation_seconds = report.seconds
                error = classify(report.checks)
                iteration.error = error.to_dict() if error else None

            iteration.decision = _decide(iteration, index, settings.max_iters)
            record.seconds = time.perf_counter() - started
            record.save()
            emit(
                progress,
                Event(
                    "iteration",
                    iteration.decision,
                    index,
                    settings.max_iters,
                    data={"record": iteration},
                ),
            )

            if iteration.validated:
                record.status = "validated"
                record.code = iteration.code
                record.code_sha256 = iteration.code_sha256
                record.message = f"validated at iteration {index}"
                break
            last = iteration
        else:
            record.status = "failed"
            record.message = _failure_message(record)
    except KeyboardInterrupt:
        record.status = "interrupted"
        record.message = "interrupted by the user; the record keeps the iterations so far"
        raise
    except BaseException as exc:
        record.status = "error"
        record.message = str(exc)
        raise
    finally:
        record.seconds = time.perf_counter() - started
        record.save()

    return record


def _decide(iteration: IterationRecord, index: int, max_iters: int) -> str:
    if iteration.validated:
        return "accept"
    if index == max_iters:
        return "stop: iteration limit reached"
    if not iteration.code:
        return "resample: no usable code"
    return "repair"


def _failure_message(record: RunRecord) -> str:
    if not any(i.code for i in record.iterations):
        last = record.iterations[-1].error if record.iterations else None
        detail = f" ({last['message']})" if last else ""
        return (
            f"the model never produced a usable definition of {record.name!r} in "
            f"{len(record.iterations)} iteration(s){detail}; try a larger model or more iterations"
        )
    last_error = record.iterations[-1].error
    detail = f"[{last_error['class']}] {last_error['message']}" if last_error else "unknown error"
    return f"no candidate validated in {len(record.iterations)} iteration(s); last error: {detail}"
