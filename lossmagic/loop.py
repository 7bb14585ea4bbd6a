"""The generate → validate → classify → repair loop, run by a strategy.

``run_loop`` owns what every strategy shares: the run record's status, message and
timing, saved after every iteration and on interruption. The strategy (see
``lossmagic.strategies``) decides what to sample, which checks to run and when a
candidate is accepted. Prompts are built fresh from the task every round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from lossmagic.backends.base import Backend
from lossmagic.exceptions import ConfigurationError
from lossmagic.progress import ProgressCallback
from lossmagic.prompts import Style
from lossmagic.records import RunRecord
from lossmagic.sandbox import Sandbox
from lossmagic.spec import InputSpec

__all__ = ["STRATEGY_NAMES", "LoopSettings", "run_loop"]

logger = logging.getLogger(__name__)

STRATEGY_NAMES = ("lossmagic", "baseline")


@dataclass(frozen=True)
class LoopSettings:
    """Settings of one run; all of them are stored in the run record."""

    max_iters: int = 4
    """Rounds of generation; the baseline counts single candidates instead."""
    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 384
    timeout: float = 60.0
    style: Style = "function"
    """``function`` for a plain function; ``module`` for an ``nn.Module`` class named by the run."""
    strategy: str = "lossmagic"
    """``lossmagic`` (checks decide, routed repair) or ``baseline`` (the original design)."""
    candidates: int = 1
    """Candidates sampled per round in one batched call (the default strategy only)."""
    retrieval: bool = True
    """Use the catalog: worked examples (in prompts and as candidates), the cross-check."""
    tests: bool = True
    """Have the model write tests from the task, used as evidence (the default strategy)."""
    probes: bool = True
    """Run the semantic probes (the default strategy only)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def check(self) -> None:
        """Raise ConfigurationError for a setting out of range."""
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigurationError(
                f"unknown strategy {self.strategy!r}.",
                f"Use one of: {', '.join(STRATEGY_NAMES)}.",
            )
        if self.max_iters < 1:
            raise ConfigurationError(f"invalid max_iters {self.max_iters}.", "Use 1 or more.")
        if self.candidates < 1:
            raise ConfigurationError(f"invalid candidates {self.candidates}.", "Use 1 or more.")


def run_loop(
    record: RunRecord,
    spec: InputSpec,
    backend: Backend,
    sandbox: Sandbox,
    settings: LoopSettings,
    progress: ProgressCallback | None = None,
) -> RunRecord:
    """Run the settings' strategy until a candidate is accepted or the budget is spent."""
    from lossmagic.strategies import STRATEGIES, RunContext

    settings.check()
    context = RunContext(record, spec, backend, sandbox, settings, progress)
    started = time.perf_counter()
    try:
        accepted = STRATEGIES[settings.strategy](context)
        if accepted is not None:
            record.status = "validated"
            record.code = accepted.code
            record.code_sha256 = accepted.iteration.code_sha256
            iteration = accepted.iteration
            round_text = f" in round {iteration.round}" if iteration.round else ""
            record.message = f"accepted candidate {iteration.index}{round_text}"
            origin = next(
                (n for n in iteration.extraction_notes if n.startswith(_HARNESS_NOTES)), None
            )
            if origin is not None:
                record.message += f", written by lossmagic ({origin}), not by the model"
            disagreement = next(
                (c for c in accepted.checks if c.name == "reference" and c.failed), None
            )
            if disagreement is not None:
                record.message += f"; warning: it {disagreement.message}"
                logger.warning("the accepted loss %s", disagreement.message)
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


_HARNESS_NOTES = ("worked example", "mechanical repair")
"""Extraction notes that mark candidates the harness wrote without the model."""


def _failure_message(record: RunRecord) -> str:
    if not any(i.code for i in record.iterations):
        last = record.iterations[-1].error if record.iterations else None
        detail = f" ({last['message']})" if last else ""
        return (
            f"the model never produced a usable definition of {record.name!r} in "
            f"{record.rounds} round(s){detail}; try a larger model or more iterations"
        )
    last_error = next((i.error for i in reversed(record.iterations) if i.error), None)
    detail = f"[{last_error['class']}] {last_error['message']}" if last_error else "unknown error"
    rounds = record.rounds
    return f"no candidate validated in {rounds} round(s); last error: {detail}"
