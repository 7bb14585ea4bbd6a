"""The default strategy: authoritative checks decide, and repairs are routed by error class.

Each round samples K candidates in one batched call and validates every one of them
with the contract checks, the probes and the generated tests. The best candidate is
picked by authoritative checks, then by agreement with the generated tests, then by
simplicity. A repair that breaks a check its parent passed is rejected. After repeated
failures of one error class, or a repair that returns its parent unchanged, the next
round resamples from the task. A lone first candidate is decoded greedily. Two kinds
of candidate cost no generation: a worked example from the catalog that fits the
request exactly (first round), and the mechanical repair of a non-scalar candidate.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass

from lossmagic.checks.generated import TEST_PREFIX, GeneratedTest
from lossmagic.errors import (
    ErrorClass,
    ErrorInfo,
    classify,
    classify_tests,
    resolve_blame,
    suspect_tests,
)
from lossmagic.exceptions import ExtractionError
from lossmagic.extract import extract_definition
from lossmagic.progress import Event, emit
from lossmagic.prompts import (
    PromptParts,
    build_generation_prompt,
    build_repair_prompt,
    example_source,
)
from lossmagic.strategies.common import (
    Candidate,
    RunContext,
    add_candidate,
    ask_blame,
    generate_tests,
    sample_candidates,
    validate,
)
from lossmagic.strategies.routing import mechanical_repair, repair_evidence, repair_instruction

__all__ = ["run_default", "selection_key"]

logger = logging.getLogger(__name__)

REPEATS_BEFORE_RESAMPLE = 2
"""Failures of one error class in a row after which the next round resamples."""

REFERENCE_CHECK = "reference"
"""The name of the non-authoritative cross-check against a catalog reference."""

REFERENCE_INSTRUCTION = (
    "The function runs, but its value differs from the standard formula of the loss the "
    "task names. Check the reduction, signs, the dimension of softmax and any temperature "
    "or scaling factor, and follow the task's stated parameters."
)


@dataclass
class _Plan:
    """The request of the next round: a fresh sample, or a repair of ``parent``."""

    kind: str = "generate"
    parent: Candidate | None = None
    evidence: str = ""
    instruction: str = ""


def selection_key(
    candidate: Candidate, suspects: frozenset[str]
) -> tuple[int, int, int, int, int, int]:
    """Rank a candidate: authoritative checks, the catalog cross-check, generated tests
    passed (leaving out suspect tests), then simplicity."""
    authoritative = [c for c in candidate.checks if c.authoritative]
    return (
        int(bool(candidate.code)),
        int(candidate.authoritative_passed),
        int(not any(c.name == REFERENCE_CHECK and c.failed for c in candidate.checks)),
        sum(1 for c in authoritative if c.passed),
        candidate.tests_passed(suspects),
        -_size(candidate.code),
    )


def _size(code: str) -> int:
    try:
        return sum(1 for _ in ast.walk(ast.parse(code)))
    except SyntaxError:
        return len(code)


def _broken_checks(parent: Candidate, child: Candidate) -> list[str]:
    """Return the authoritative checks (and the cross-check) the parent passed but not the child.

    Generated tests are left out: they are evidence, and a repair may rightly fail one.
    """

    def kept(candidate: Candidate) -> set[str]:
        return {
            c.name
            for c in candidate.checks
            if c.passed and (c.authoritative or c.name == REFERENCE_CHECK)
        }

    return sorted(kept(parent) - kept(child))


def _prompt(context: RunContext, plan: _Plan) -> PromptParts:
    record = context.record
    style = context.style
    if plan.parent is None:
        return build_generation_prompt(
            record.task,
            record.name,
            context.spec,
            context.examples(),
            style,  # type: ignore[arg-type]
        )
    return build_repair_prompt(
        record.task,
        record.name,
        context.spec,
        plan.parent.code,
        plan.evidence,
        plan.instruction,
        examples=context.examples(),
        style=style,  # type: ignore[arg-type]
    )


class _DefaultRun:
    """The state of one run of the default strategy."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.tests: list[GeneratedTest] = []
        self.seen: list[Candidate] = []
        self.best: Candidate | None = None
        self.classes: list[ErrorClass] = []
        self.test_repairs: set[str] = set()

    def run(self) -> Candidate | None:
        settings = self.context.settings
        if settings.tests:
            self.tests = generate_tests(self.context, 1, settings.seed)

        plan = _Plan()
        for round_index in range(1, settings.max_iters + 1):
            self.context.stage(f"generating ({plan.kind})", round_index)
            seed = settings.seed + round_index - 1
            # A single first candidate is decoded greedily: the most likely answer of a
            # small model is more often right than a sample. Later rounds sample.
            greedy = round_index == 1 and settings.candidates == 1
            candidates = sample_candidates(
                self.context,
                _prompt(self.context, plan),
                plan.kind,
                round_index,
                seed,
                temperature=0.0 if greedy else None,
            )
            self.context.stage("validating", round_index)
            for candidate in candidates:
                self._validate(candidate)
            candidates += self._mechanical_repairs(candidates, plan.kind)
            if round_index == 1:
                candidates += self._example_candidates()
            for candidate in candidates:
                candidate.iteration.round = round_index
            self.seen.extend(c for c in candidates if c.code)

            last_round = round_index == settings.max_iters
            plan_or_done = self._decide(candidates, plan, round_index, last_round)
            self.context.record.save()
            for candidate in candidates:
                emit(
                    self.context.progress,
                    Event(
                        "iteration",
                        candidate.iteration.decision,
                        round_index,
                        settings.max_iters,
                        data={"record": candidate.iteration},
                    ),
                )
            if plan_or_done is None:
                break
            plan = plan_or_done
        return self.best if self.best is not None and self.best.authoritative_passed else None

    def _validate(self, candidate: Candidate) -> None:
        validate(self.context, candidate, self.tests, self.context.settings.probes)
        if candidate.code:
            candidate.iteration.error = _error_dict(classify(candidate.checks))

    def _example_candidates(self) -> list[Candidate]:
        """Offer the catalog entry that the task clearly requests as a candidate of its own.

        A catalog entry adapted to the requested name and inputs is often right where a
        small model fails to copy it. Only the clearly requested entry qualifies, never a
        loosely related worked example, so a task that names no standard loss is not
        forced into one. The checks and the selection decide as for any candidate, and the
        record notes where it came from.
        """
        # NOTE: a task that clearly requests the wrong entry (a reworded loss that the
        # catalog reads as another) still gets that entry, and the cross-check then
        # compares it with that same reference.
        context = self.context
        example = context.reference_example()
        if example is None or example.name != context.record.name or example.spec != context.spec:
            return []

        source = example_source(example, context.style)  # type: ignore[arg-type]
        try:
            code = extract_definition(source, context.record.name).code
        except ExtractionError:
            logger.debug("worked example for %r does not extract", example.task)
            return []
        candidate = add_candidate(context, code, "generate", f"worked example: {example.task}")
        self._validate(candidate)
        return [candidate]

    def _mechanical_repairs(self, candidates: list[Candidate], kind: str) -> list[Candidate]:
        """Fix, without the model, candidates whose error class has one sure fix."""
        repaired = []
        for candidate in candidates:
            error = candidate.iteration.error
            if error is None:
                continue
            code = mechanical_repair(
                ErrorClass(error["class"]), candidate.code, self.context.record.name
            )
            if code is None:
                continue
            fixed = add_candidate(
                self.context,
                code,
                kind,
                f"mechanical repair of iteration {candidate.iteration.index} ({error['class']})",
            )
            self._validate(fixed)
            repaired.append(fixed)
        return repaired

    def _decide(
        self, candidates: list[Candidate], plan: _Plan, round_index: int, last_round: bool
    ) -> _Plan | None:
        """Pick this round's best, update the best so far, and plan the next round."""
        # Only candidates that pass every authoritative check can vouch against a test.
        suspects = suspect_tests([c.checks for c in self.seen if c.authoritative_passed])
        ranked = sorted(candidates, key=lambda c: selection_key(c, suspects), reverse=True)
        chosen = ranked[0]
        for other in ranked[1:]:
            other.iteration.decision = "not selected"

        parent = plan.parent
        broken = _broken_checks(parent, chosen) if parent is not None else []
        if parent is not None and broken and chosen.code:
            chosen.iteration.decision = f"reject: the repair breaks {', '.join(broken)}"
        elif self.best is None or selection_key(chosen, suspects) > selection_key(
            self.best, suspects
        ):
            self.best = chosen

        best = self.best
        if best is None or not best.code:
            self.classes.append(ErrorClass.SYNTAX)
            chosen.iteration.decision = chosen.iteration.decision or "resample: no usable code"
            return None if last_round else _Plan("resample")

        if best.authoritative_passed:
            return self._decide_on_tests(best, chosen, suspects, round_index, last_round)

        error = classify(best.checks) or ErrorInfo(ErrorClass.RUNTIME, "unknown failure")
        self.classes.append(error.error_class)
        if last_round:
            chosen.iteration.decision = chosen.iteration.decision or "stop: iteration limit reached"
            return None
        if parent is not None and chosen.iteration.code_sha256 == parent.iteration.code_sha256:
            chosen.iteration.decision = "resample: the repair repeated the failing code"
            self.classes.clear()
            return _Plan("resample")
        repeated = self.classes[-REPEATS_BEFORE_RESAMPLE:]
        if len(repeated) == REPEATS_BEFORE_RESAMPLE and len(set(repeated)) == 1:
            chosen.iteration.decision = (
                chosen.iteration.decision or f"resample: {error.error_class} failed again"
            )
            self.classes.clear()
            return _Plan("resample")
        chosen.iteration.decision = chosen.iteration.decision or f"repair: {error.error_class}"
        return _Plan(
            "repair",
            best,
            repair_evidence(error, best.checks, best.code),
            repair_instruction(error.error_class),
        )

    def _decide_on_tests(
        self,
        best: Candidate,
        chosen: Candidate,
        suspects: frozenset[str],
        round_index: int,
        last_round: bool,
    ) -> _Plan | None:
        """Accept ``best``, or repair it when it disagrees with the catalog reference or a
        trustworthy generated test fails on it."""
        disagreement = next(
            (c for c in best.checks if c.name == REFERENCE_CHECK and c.failed), None
        )
        if (
            disagreement is not None
            and not last_round
            and best.iteration.code_sha256 not in self.test_repairs
        ):
            self.test_repairs.add(best.iteration.code_sha256)
            chosen.iteration.decision = (
                chosen.iteration.decision or "repair: disagrees with the reference"
            )
            return _Plan("repair", best, disagreement.message, REFERENCE_INSTRUCTION)
        failure = classify_tests(best.checks, suspects)
        if failure is not None and failure.error_class is ErrorClass.TEST_FAILED:
            failure = self._break_tie(best, failure, suspects, round_index)
        self._drop_faulty_tests(best, suspects)

        if (
            failure is None
            or failure.error_class is ErrorClass.TEST_FAULT
            or last_round
            or best.iteration.code_sha256 in self.test_repairs
        ):
            chosen.iteration.decision = chosen.iteration.decision or "accept"
            best.iteration.decision = "accept"
            return None

        self.test_repairs.add(best.iteration.code_sha256)
        chosen.iteration.decision = chosen.iteration.decision or "repair: generated test failed"
        return _Plan(
            "repair",
            best,
            repair_evidence(failure, best.checks, best.code),
            repair_instruction(ErrorClass.TEST_FAILED),
        )

    def _break_tie(
        self, best: Candidate, failure: ErrorInfo, suspects: frozenset[str], round_index: int
    ) -> ErrorInfo:
        """Settle a failed test that no other candidate passed, with the model's blame."""
        others_pass = any(c is not best and failure.check in c.passed_names() for c in self.seen)
        if others_pass:
            return failure
        check = next(c for c in best.checks if c.name == failure.check)
        answer = ask_blame(
            self.context,
            best.code,
            str(check.evidence.get("source", "")),
            failure.message,
            round_index,
        )
        resolved = resolve_blame(answer, best.authoritative_passed)
        logger.debug("blame %r for %s resolved to %s", answer, failure.check, resolved)
        if resolved is ErrorClass.TEST_FAULT:
            check.evidence["test_fault"] = (
                "the model blamed the test, and the code passed every check"
            )
        return ErrorInfo(resolved, failure.message, failure.check)

    def _drop_faulty_tests(self, best: Candidate, suspects: frozenset[str]) -> None:
        """Drop the tests that are faulty on ``best`` from later rounds; keep the code."""
        faulty = {
            c.name.removeprefix(TEST_PREFIX)
            for c in best.checks
            if c.failed and (c.evidence.get("test_fault") or c.name in suspects)
        }
        self.tests = [t for t in self.tests if t.name not in faulty]


def _error_dict(error: ErrorInfo | None) -> dict[str, str] | None:
    return error.to_dict() if error else None


def run_default(context: RunContext) -> Candidate | None:
    """Run the default strategy; return the accepted candidate, or None."""
    return _DefaultRun(context).run()
