"""The one entry point that the sandbox calls to run every check on a candidate.

``options`` is the JSON-ready dict that travels with the sandbox job. Keys:

- ``probes`` (bool): run the semantic probes (better-is-lower, trainability).
- ``task`` (str): the task text, for checks that read parameters from it.
- ``reference`` (dict): a catalog reference to cross-check against.
- ``tests`` (list): generated tests to run as evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import run_contract_checks
from lossmagic.spec import InputSpec

__all__ = ["run_candidate_checks"]


def run_candidate_checks(
    function: Callable[..., Any],
    spec: InputSpec,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Iterator[CheckResult]:
    """Run the contract checks, then the optional checks that ``options`` asks for."""
    options = options or {}
    contract = run_contract_checks(function, spec, seed=seed)
    yield from contract
    if any(result.failed for result in contract):
        return
