"""The one entry point that the sandbox calls to run every check on a candidate.

``options`` is the JSON-ready dict that travels with the sandbox job. Keys:

- ``probes`` (bool, default True): run the semantic probes (better-is-lower,
  trainability) once the contract checks pass.
- ``task`` (str): the task text; it sets the expected reduction (mean, sum or none)
  and refines the loss family that the probes infer from the spec.
- ``time_budget`` (float): seconds one call may take on trial inputs.
- ``reference`` (dict): a catalog reference to cross-check against, from
  ``lossmagic.checks.reference.reference_options``.
- ``tests`` (list): generated tests to run as evidence, as ``GeneratedTest.to_dict()``.
- ``name`` (str): the name the generated tests call the loss by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import DEFAULT_TIME_BUDGET, run_contract_checks
from lossmagic.checks.generated import run_generated_tests
from lossmagic.checks.probes import run_probes
from lossmagic.checks.reference import cross_check
from lossmagic.spec import InputSpec

__all__ = ["run_candidate_checks"]


def run_candidate_checks(
    function: Callable[..., Any],
    spec: InputSpec,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Iterator[CheckResult]:
    """Run the contract checks, then the optional checks that ``options`` requests."""
    options = options or {}
    task = str(options.get("task", ""))
    budget = float(options.get("time_budget", DEFAULT_TIME_BUDGET))
    contract = run_contract_checks(function, spec, seed=seed, task=task, time_budget=budget)
    yield from contract
    if options.get("tests"):
        # Tests are evidence even on a failing candidate: agreement across candidates uses them.
        yield from run_generated_tests(
            function, spec, options["tests"], str(options.get("name", "loss_fn"))
        )
    if options.get("reference"):
        # Disagreement with the reference is repair evidence even when a contract check failed.
        yield cross_check(function, spec, seed, options["reference"])
    if any(result.failed for result in contract):
        return
    if options.get("probes", True):
        yield from run_probes(function, spec, seed=seed, task=task)
