"""Strategies: how a run turns model samples into an accepted candidate.

``lossmagic`` (the default) lets the authoritative checks decide and routes repairs by
error class; ``baseline`` re-implements the original research design for comparison.
"""

from __future__ import annotations

from collections.abc import Callable

from lossmagic.strategies.baseline import run_baseline
from lossmagic.strategies.common import Candidate, RunContext
from lossmagic.strategies.default import run_default

__all__ = ["STRATEGIES", "Candidate", "RunContext", "StrategyFunction"]

StrategyFunction = Callable[[RunContext], "Candidate | None"]

STRATEGIES: dict[str, StrategyFunction] = {
    "lossmagic": run_default,
    "baseline": run_baseline,
}
