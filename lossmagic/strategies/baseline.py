"""The baseline strategy: the original research design, kept for side-by-side comparison.

One candidate at a time and model-written tests only: a candidate is accepted when
every generated test passes (and at least one ran). When a test fails, the model's
one-word blame (loss, test or unknown) routes the next step: repair the loss, write new
tests, or sample a new loss. Up to 3 outer rounds (fresh tests and a fresh loss) of 3
inner attempts each, capped by ``settings.max_iters`` candidates in all. Neither worked
examples nor the catalog cross-check are used, and the contract checks take no part in
the decision, though the sandbox still records their verdicts as evidence.
"""

from __future__ import annotations

from lossmagic.checks.generated import TEST_PREFIX, GeneratedTest
from lossmagic.errors import ErrorClass, ErrorInfo, classify
from lossmagic.progress import Event, emit
from lossmagic.prompts import build_generation_prompt, build_repair_prompt
from lossmagic.strategies.common import (
    Candidate,
    RunContext,
    ask_blame,
    generate_tests,
    sample_candidates,
    validate,
)

__all__ = ["BASELINE_INNER", "BASELINE_OUTER", "run_baseline"]

BASELINE_OUTER = 3
BASELINE_INNER = 3


def _test_failure(candidate: Candidate) -> ErrorInfo | None:
    """Return the first failed generated test, or why no test ran; None when all passed.

    A failure whose check is ``tests`` means the loss ran but there was no test to run.
    """
    tests = [c for c in candidate.checks if c.name.startswith(TEST_PREFIX)]
    failed = [c for c in tests if c.failed]
    if failed:
        return ErrorInfo(ErrorClass.TEST_FAILED, failed[0].message, failed[0].name)
    if tests:
        return None
    return classify(candidate.checks) or ErrorInfo(
        ErrorClass.TEST_FAULT, "no generated test ran", "tests"
    )


def _attempt(
    context: RunContext,
    tests: list[GeneratedTest],
    parent: Candidate | None,
    failure: str,
    count: int,
) -> Candidate:
    record = context.record
    if parent is None:
        kind = "generate" if count == 1 else "resample"
        prompt = build_generation_prompt(record.task, record.name, context.spec)
    else:
        kind = "repair"
        prompt = build_repair_prompt(record.task, record.name, context.spec, parent.code, failure)
    context.stage(f"generating ({kind})", count)
    seed = context.settings.seed + count - 1
    candidate = sample_candidates(context, prompt, kind, count, seed)[0]
    context.stage("running generated tests", count)
    validate(context, candidate, tests, probes=False, cross_check=False)
    return candidate


def run_baseline(context: RunContext) -> Candidate | None:
    """Run the baseline strategy; return the accepted candidate, or None."""
    budget = context.settings.max_iters
    count = 0
    for outer in range(1, BASELINE_OUTER + 1):
        if count >= budget:
            return None
        tests = generate_tests(context, count + 1, context.settings.seed + 100 * outer)
        parent: Candidate | None = None
        failure = ""
        for _inner in range(BASELINE_INNER):
            if count >= budget:
                return None
            count += 1
            candidate = _attempt(context, tests, parent, failure, count)
            decision, parent, failure, tests = _route(context, candidate, tests, count)
            candidate.iteration.decision = decision
            context.record.save()
            emit(
                context.progress,
                Event("iteration", decision, count, budget, data={"record": candidate.iteration}),
            )
            if decision == "accept":
                return candidate
    return None


def _route(
    context: RunContext, candidate: Candidate, tests: list[GeneratedTest], count: int
) -> tuple[str, Candidate | None, str, list[GeneratedTest]]:
    """Return the decision, the candidate to repair, its failure, and the tests to use next."""
    if not candidate.code:
        return "resample: no usable code", None, "", tests

    failure = _test_failure(candidate)
    candidate.iteration.error = failure.to_dict() if failure else None
    if failure is None:
        return "accept", None, "", tests
    if failure.check == "tests":
        return _retest(context, candidate, count, "repair: no test ran, and the new tests fail")
    if failure.error_class is not ErrorClass.TEST_FAILED:
        return "repair: the loss does not run", candidate, failure.message, tests

    check = next(c for c in candidate.checks if c.name == failure.check)
    source = str(check.evidence.get("source", ""))
    answer = ask_blame(context, candidate.code, source, failure.message, count)
    if answer == "loss":
        return "repair: the model blamed the loss", candidate, failure.message, tests
    if answer == "test":
        return _retest(context, candidate, count, "repair: the new tests failed too")
    return "resample: the model's blame was unknown", None, "", tests


def _retest(
    context: RunContext, candidate: Candidate, count: int, decision: str
) -> tuple[str, Candidate | None, str, list[GeneratedTest]]:
    """Write new tests and run them at once on the same loss; a failure is repaired next."""
    tests = generate_tests(context, count, context.settings.seed + 1000 + count)
    validate(context, candidate, tests, probes=False, cross_check=False)
    failure = _test_failure(candidate)
    candidate.iteration.error = failure.to_dict() if failure else None
    if failure is None:
        return "accept", None, "", tests
    return decision, candidate, failure.message, tests
