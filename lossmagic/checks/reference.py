"""The semantic cross-check: a candidate against the catalog reference that the task names.

The check runs inside the sandbox child. It calls the candidate and the reference on the
same trial inputs as the contract checks, in float64, with the parameters that the task
states, and reports agreement or the largest difference with the input that shows it.
A reference may have variants (other published conventions); agreeing with any one of
them counts as agreement.

The ``reference`` option is the dict from ``reference_options``::

    {"key": "focal", "params": {"gamma": 2.0}, "order": [0, 1], "authoritative": False}

``order[i]`` is the position among the candidate's inputs of the reference's input i.
The check is evidence unless ``authoritative`` is true: the catalog may misread a task,
so by default a disagreement routes to repair and warns instead of rejecting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lossmagic.catalog import get_entry
from lossmagic.catalog.entry import CatalogEntry, Reference
from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import describe_exception
from lossmagic.spec import InputSpec, make_trial

__all__ = ["CHECK_NAME", "cross_check", "reference_options"]

CHECK_NAME = "reference"

RELATIVE_TOLERANCE = 1e-3
ABSOLUTE_TOLERANCE = 1e-5

_VARIANTS = ("ordinary", "one_class", "scaled")
"""Trial kinds compared. ``scaled`` shrinks float inputs without a domain by
``_SCALE`` so that margins and thresholds near 1 are crossed. Edge cases test numerics,
which the contract checks cover."""

_SCALE = 0.2


@dataclass
class _Difference:
    """The largest disagreement found so far."""

    candidate: float
    reference: float
    sizes: dict[str, int]
    variant: str
    inputs: dict[str, list[Any]]

    @property
    def size(self) -> float:
        return abs(self.candidate - self.reference)


def reference_options(
    key: str,
    params: dict[str, float],
    order: tuple[int, ...] | list[int],
    authoritative: bool = False,
) -> dict[str, Any]:
    """Build the JSON-ready ``reference`` option for the sandbox job."""
    return {
        "key": key,
        "params": dict(params),
        "order": list(order),
        "authoritative": authoritative,
    }


def _close(candidate: float, reference: float) -> bool:
    if not (math.isfinite(candidate) and math.isfinite(reference)):
        return candidate == reference or (math.isnan(candidate) and math.isnan(reference))
    return abs(candidate - reference) <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * abs(reference)


def _preview(tensor: torch.Tensor) -> list[Any]:
    values = tensor.detach().flatten()[:6].tolist()
    return [round(v, 4) if isinstance(v, float) else v for v in values]


def _evaluate(
    function: Callable[..., Any], inputs: list[torch.Tensor]
) -> tuple[float | None, dict[str, Any] | None]:
    try:
        output = function(*inputs)
    except Exception as exc:  # noqa: BLE001 - a failing call is evidence, not a crash
        return None, describe_exception(exc)
    if not isinstance(output, torch.Tensor) or output.numel() != 1:
        return None, {"type": "shape", "message": "the output is not a single value"}
    return float(output.detach().double()), None


def _trial(
    spec: InputSpec, sizes: dict[str, int], seed: int, variant: str
) -> dict[str, torch.Tensor]:
    kind = "ordinary" if variant == "scaled" else variant
    trial = make_trial(spec, sizes, seed, kind, dtype=torch.float64)
    if variant == "scaled":
        for item in spec.items:
            if item.is_float and item.domain is None:
                trial[item.name] = trial[item.name].detach() * _SCALE
    return trial


def _references(entry: CatalogEntry) -> list[Reference]:
    return [entry.reference, *entry.variants]


def cross_check(
    function: Callable[..., Any], spec: InputSpec, seed: int, option: dict[str, Any]
) -> CheckResult:
    """Compare ``function`` with the reference in ``option`` on the checks' trial inputs."""
    started = time.perf_counter()
    result = _compare(function, spec, seed, option)
    result.seconds = time.perf_counter() - started
    return result


def _compare(
    function: Callable[..., Any], spec: InputSpec, seed: int, option: dict[str, Any]
) -> CheckResult:
    try:
        entry = get_entry(str(option["key"]))
    except KeyError as exc:
        return CheckResult(CHECK_NAME, "skip", str(exc).strip("'\""), authoritative=False)
    params = {**entry.defaults, **{k: float(v) for k, v in dict(option.get("params", {})).items()}}
    order = [int(position) for position in option.get("order", range(len(spec.items)))]

    authoritative = bool(option.get("authoritative", False))
    agreeing = set(range(len(_references(entry))))
    worst: list[_Difference | None] = [None] * len(agreeing)
    compared = 0
    for index, sizes in enumerate(spec.trial_sizes()):
        for variant in _VARIANTS:
            trial = _trial(spec, sizes, seed + index, variant)
            inputs = list(trial.values())
            value, error = _evaluate(function, [t.detach().clone() for t in inputs])
            if value is None:
                message = f"the candidate failed on the cross-check inputs: {error}"
                return CheckResult(CHECK_NAME, "skip", message, {"error": error}, False)
            arranged = [inputs[position].detach().clone() for position in order]
            compared += 1
            for number, reference in enumerate(_references(entry)):
                expected = float(reference(*arranged, **params).detach().double())
                if _close(value, expected):
                    continue
                agreeing.discard(number)
                found = _Difference(
                    value,
                    expected,
                    dict(sizes),
                    variant,
                    {name: _preview(t) for name, t in trial.items()},
                )
                previous = worst[number]
                if previous is None or found.size > previous.size:
                    worst[number] = found

    evidence: dict[str, Any] = {
        "reference": entry.key,
        "params": params,
        "trials": compared,
        "rtol": RELATIVE_TOLERANCE,
        "atol": ABSOLUTE_TOLERANCE,
    }
    if agreeing:
        convention = "its reference" if 0 in agreeing else "a published variant of it"
        message = f"agrees with {entry.title} ({convention}) on {compared} trial(s)"
        return CheckResult(CHECK_NAME, "pass", message, evidence, authoritative)

    difference = worst[0]
    assert difference is not None
    evidence.update(
        candidate=difference.candidate,
        expected=difference.reference,
        sizes=difference.sizes,
        variant=difference.variant,
        inputs=difference.inputs,
    )
    ratio = difference.candidate / difference.reference if difference.reference else math.inf
    setting = ", ".join(f"{k}={v:g}" for k, v in params.items())
    message = (
        f"disagrees with {entry.title}{f' ({setting})' if setting else ''}: returned "
        f"{difference.candidate:.6g} where the reference gives {difference.reference:.6g} "
        f"(ratio {ratio:.4g}) on sizes {difference.sizes}, {difference.variant} inputs "
        f"{difference.inputs}"
    )
    return CheckResult(CHECK_NAME, "fail", message, evidence, authoritative)
