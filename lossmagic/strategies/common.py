"""Shared steps of both strategies: sampling candidates, validating them, generated tests.

A ``RunContext`` bundles the run's record, input spec, backend, sandbox, settings and
progress callback. Every model call goes through ``sample``, so token and time counts
land in the run record: candidates as iteration records, generated tests and one-word
blames in ``generated-tests.json`` beside ``record.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossmagic.backends.base import Backend, ChatRequest, Completion
from lossmagic.catalog.retrieval import reference_for
from lossmagic.checks.base import CheckResult
from lossmagic.checks.generated import TEST_PREFIX, GeneratedTest, split_tests
from lossmagic.errors import Blame, ErrorClass, ErrorInfo, parse_blame
from lossmagic.examples import pick_examples, reference_example
from lossmagic.exceptions import ExtractionError
from lossmagic.extract import extract_definition
from lossmagic.progress import Event, ProgressCallback, emit
from lossmagic.prompts import (
    PromptParts,
    WorkedExample,
    build_blame_prompt,
    build_test_prompt,
    stop_strings,
)
from lossmagic.records import IterationRecord, RunRecord, source_hash
from lossmagic.sandbox import Sandbox
from lossmagic.spec import InputSpec

if TYPE_CHECKING:
    from lossmagic.loop import LoopSettings

__all__ = [
    "TESTS_FILENAME",
    "Candidate",
    "RunContext",
    "add_candidate",
    "ask_blame",
    "generate_tests",
    "sample_candidates",
    "validate",
]

logger = logging.getLogger(__name__)

TESTS_FILENAME = "generated-tests.json"
"""The side file of a run folder that keeps generated tests and one-word blames."""

TEST_TOKENS = 256
BLAME_TOKENS = 4


@dataclass
class RunContext:
    """Everything one strategy run works with."""

    record: RunRecord
    spec: InputSpec
    backend: Backend
    sandbox: Sandbox
    settings: LoopSettings
    progress: ProgressCallback | None = None
    side_calls: list[dict[str, Any]] = field(default_factory=list)
    """Model calls that produced no candidate: test generation and blames."""

    @property
    def style(self) -> str:
        return str(self.record.settings.get("style", "function"))

    def examples(self) -> tuple[WorkedExample, ...]:
        """Return the worked examples for the task, or none when retrieval is off."""
        if not self.settings.retrieval:
            return ()
        return pick_examples(self.record.task, self.spec, self.record.name)

    def reference_example(self) -> WorkedExample | None:
        """Return the worked example of the catalog entry the task clearly requests.

        Returns None when retrieval is off or no entry is clearly requested, so only code
        that the cross-check compares with its own reference becomes a candidate.
        """
        if not self.settings.retrieval:
            return None
        return reference_example(self.record.task, self.spec, self.record.name)

    def reference(self) -> dict[str, Any] | None:
        """Return the catalog reference that the task clearly asks for, as a check option.

        Returns None when retrieval is off, so that a run uses no catalog knowledge.
        """
        if not self.settings.retrieval:
            return None
        return reference_for(self.record.task, self.spec)

    def stage(self, message: str, index: int) -> None:
        emit(self.progress, Event("stage", message, index, self.settings.max_iters))

    def save_side_calls(self) -> None:
        path = Path(self.record.folder) / TESTS_FILENAME
        path.write_text(json.dumps(self.side_calls, indent=2, default=str) + "\n", "utf-8")


@dataclass
class Candidate:
    """One candidate of a round: its iteration record and the checks' verdicts."""

    iteration: IterationRecord

    @property
    def code(self) -> str:
        return self.iteration.code

    @property
    def checks(self) -> list[CheckResult]:
        return self.iteration.checks

    @property
    def authoritative_passed(self) -> bool:
        authoritative = [c for c in self.checks if c.authoritative]
        return bool(authoritative) and not any(c.failed for c in authoritative)

    def passed_names(self) -> set[str]:
        """Return the names of the checks and generated tests that passed."""
        return {c.name for c in self.checks if c.passed}

    def tests_passed(self, excluded: frozenset[str] = frozenset()) -> int:
        return sum(
            1
            for c in self.checks
            if c.name.startswith(TEST_PREFIX) and c.passed and c.name not in excluded
        )


def sample(
    context: RunContext,
    prompt: PromptParts,
    n: int,
    max_new_tokens: int,
    seed: int,
    index: int,
    temperature: float | None = None,
) -> tuple[list[Completion], str, float]:
    """Ask the backend for ``n`` completions in one call; return them, the prefill, seconds."""
    settings = context.settings
    prefill = prompt.prefill if context.backend.supports_prefill else ""
    request = ChatRequest(
        messages=prompt.messages,
        prefill=prefill,
        stop=stop_strings(prefill),
        max_new_tokens=max_new_tokens,
        temperature=settings.temperature if temperature is None else temperature,
        top_p=settings.top_p,
        seed=seed,
        n=n,
    )

    def on_tokens(count: int) -> None:
        emit(context.progress, Event("tokens", count=count, iteration=index))

    started = time.perf_counter()
    completions = context.backend.complete(request, on_tokens)
    return completions, prefill, time.perf_counter() - started


def sample_candidates(
    context: RunContext,
    prompt: PromptParts,
    kind: str,
    round_index: int,
    seed: int,
    temperature: float | None = None,
) -> list[Candidate]:
    """Sample ``settings.candidates`` candidates in one call and extract each of them.

    ``temperature`` overrides the settings' sampling temperature for this call.
    """
    settings = context.settings
    first = len(context.record.iterations) + 1
    completions, prefill, seconds = sample(
        context,
        prompt,
        settings.candidates,
        settings.max_new_tokens,
        seed,
        round_index,
        temperature=temperature,
    )
    messages = [{"role": m.role, "content": m.content} for m in prompt.messages]

    candidates = []
    for offset, completion in enumerate(completions):
        iteration = IterationRecord(index=first + offset, kind=kind, seed=seed)  # type: ignore[arg-type]
        iteration.messages = messages
        iteration.prefill = prefill
        iteration.raw_output = completion.text
        iteration.prompt_tokens = completion.prompt_tokens
        iteration.completion_tokens = completion.completion_tokens
        iteration.generation_seconds = seconds / max(len(completions), 1)
        _extract(context.record.name, prefill + completion.text, completion, iteration)
        context.record.iterations.append(iteration)
        context.record.save_candidate(iteration)
        candidates.append(Candidate(iteration))
    return candidates


def add_candidate(context: RunContext, code: str, kind: str, note: str) -> Candidate:
    """Record a candidate that the harness wrote (no model call) as a new iteration."""
    iteration = IterationRecord(
        index=len(context.record.iterations) + 1,
        kind=kind,  # type: ignore[arg-type]
        code=code,
        code_sha256=source_hash(code),
        extraction_notes=[note],
        seed=context.settings.seed,
    )
    context.record.iterations.append(iteration)
    context.record.save_candidate(iteration)
    return Candidate(iteration)


def _extract(name: str, text: str, completion: Completion, iteration: IterationRecord) -> None:
    try:
        extraction = extract_definition(text, name, truncated=completion.finish_reason == "length")
    except ExtractionError as exc:
        error_class = ErrorClass.SIGNATURE if "contains no" in exc.reason else ErrorClass.SYNTAX
        iteration.error = ErrorInfo(error_class, str(exc), "extraction").to_dict()
        return
    iteration.code = extraction.code
    iteration.code_sha256 = source_hash(extraction.code)
    iteration.extraction_notes = list(extraction.notes)


def validate(
    context: RunContext,
    candidate: Candidate,
    tests: list[GeneratedTest],
    probes: bool,
    cross_check: bool = True,
) -> None:
    """Run the sandbox checks (and the generated tests) on a candidate that has code.

    ``cross_check`` adds the catalog reference cross-check when the task names one.
    """
    if not candidate.code:
        return
    options: dict[str, Any] = {"task": context.record.task, "probes": probes}
    reference = context.reference() if cross_check else None
    if reference is not None:
        options["reference"] = reference
    if tests:
        options["tests"] = [test.to_dict() for test in tests]
        options["name"] = context.record.name
    report = context.sandbox.validate(
        candidate.code, context.record.name, str(context.spec), context.settings.seed, options
    )
    candidate.iteration.checks = report.checks
    candidate.iteration.validation_seconds = report.seconds


def generate_tests(context: RunContext, index: int, seed: int) -> list[GeneratedTest]:
    """Ask the model for tests written from the task and the signature only."""
    context.stage("writing tests", index)
    prompt = build_test_prompt(context.record.task, context.record.name, context.spec)
    completions, prefill, seconds = sample(context, prompt, 1, TEST_TOKENS, seed, index)
    completion = completions[0]
    tests = split_tests(prefill + completion.text, context.record.name)
    context.side_calls.append(
        {
            "kind": "tests",
            "seed": seed,
            "raw_output": completion.text,
            "tests": [test.to_dict() for test in tests],
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "seconds": seconds,
        }
    )
    context.save_side_calls()
    logger.debug("the model wrote %d usable test(s)", len(tests))
    return tests


def ask_blame(context: RunContext, code: str, test: str, failure: str, index: int) -> Blame:
    """Ask the model whether the loss or the test is wrong; return its parsed one word."""
    prompt = build_blame_prompt(context.record.task, code, test, failure)
    completions, _, seconds = sample(
        context, prompt, 1, BLAME_TOKENS, context.settings.seed, index, temperature=0.0
    )
    answer = parse_blame(completions[0].text)
    context.side_calls.append(
        {
            "kind": "blame",
            "raw_output": completions[0].text,
            "answer": answer,
            "prompt_tokens": completions[0].prompt_tokens,
            "completion_tokens": completions[0].completion_tokens,
            "seconds": seconds,
        }
    )
    context.save_side_calls()
    return answer
