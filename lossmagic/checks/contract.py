"""Contract checks: the authoritative tests every loss must pass.

They run inside the sandbox on trial inputs synthesized from the input spec. Each check
returns a CheckResult with evidence; a check whose precondition failed is skipped.
"""

from __future__ import annotations

import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lossmagic.checks.base import CheckResult
from lossmagic.spec import InputSpec, make_trial

__all__ = ["CANDIDATE_FILENAME", "describe_exception", "run_contract_checks"]

CANDIDATE_FILENAME = "candidate.py"
"""The file name that candidate code is compiled under, so tracebacks show its frames."""

LossFunction = Callable[..., Any]


@dataclass
class _Call:
    """One call of the loss on one trial."""

    sizes: dict[str, int]
    inputs: dict[str, torch.Tensor]
    output: Any = None
    error: dict[str, Any] | None = None


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Summarize an exception: type, message, and the candidate's frame if it raised there."""
    frames = traceback.extract_tb(exc.__traceback__)
    candidate_frames = [f for f in frames if f.filename.endswith(CANDIDATE_FILENAME)]
    last = frames[-1] if frames else None
    evidence: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc).strip()[:2000],
        "in_candidate": bool(last is not None and last.filename.endswith(CANDIDATE_FILENAME)),
    }
    if candidate_frames:
        frame = candidate_frames[-1]
        evidence["line"] = frame.lineno
        evidence["code"] = frame.line
    return evidence


def _shapes(inputs: dict[str, torch.Tensor]) -> dict[str, str]:
    return {
        name: f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
        for name, t in inputs.items()
    }


def check_signature(fn: LossFunction, spec: InputSpec) -> CheckResult:
    """Check that ``fn`` takes the spec's inputs positionally and needs nothing else."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        return CheckResult("signature", "fail", f"the signature cannot be read: {exc}")

    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    evidence = {"signature": str(signature), "expected": spec.names}

    if len(positional) < len(spec.items) and not takes_varargs:
        message = (
            f"takes {len(positional)} positional argument(s) but the spec has "
            f"{len(spec.items)}: {', '.join(spec.names)}"
        )
        return CheckResult("signature", "fail", message, evidence)

    extra = [p.name for p in positional[len(spec.items) :] if p.default is p.empty]
    extra += [
        p.name
        for p in signature.parameters.values()
        if p.kind == p.KEYWORD_ONLY and p.default is p.empty
    ]
    if extra:
        message = (
            f"parameter(s) {', '.join(extra)} have no default, so calls with the spec's inputs fail"
        )
        return CheckResult("signature", "fail", message, evidence)

    return CheckResult("signature", "pass", f"{signature}", evidence)


def _call(fn: LossFunction, spec: InputSpec, sizes: dict[str, int], seed: int) -> _Call:
    inputs = make_trial(spec, sizes, seed)
    call = _Call(sizes=sizes, inputs=inputs)
    try:
        call.output = fn(*inputs.values())
    except Exception as exc:  # noqa: BLE001 - candidate code may raise anything; it is evidence
        call.error = describe_exception(exc)
    return call


def check_runs(calls: list[_Call]) -> CheckResult:
    for call in calls:
        if call.error is not None:
            evidence = {"error": call.error, "sizes": call.sizes, "inputs": _shapes(call.inputs)}
            message = (
                f"{call.error['type']}: {call.error['message']} (inputs {_shapes(call.inputs)})"
            )
            return CheckResult("runs", "fail", message, evidence)
    return CheckResult(
        "runs", "pass", f"ran on {len(calls)} trial(s)", {"trials": [c.sizes for c in calls]}
    )


def check_scalar(calls: list[_Call]) -> CheckResult:
    for call in calls:
        output = call.output
        if not isinstance(output, torch.Tensor):
            message = f"returned {type(output).__name__}, not a torch.Tensor"
            return CheckResult("scalar", "fail", message, {"type": type(output).__name__})
        if output.dim() != 0:
            message = (
                f"returned shape {tuple(output.shape)}; a loss must return a 0-dim tensor "
                "(reduce with .mean() or .sum())"
            )
            evidence = {
                "shape": list(output.shape),
                "sizes": call.sizes,
                "inputs": _shapes(call.inputs),
            }
            return CheckResult("scalar", "fail", message, evidence)
        if not output.is_floating_point():
            message = f"returned dtype {output.dtype}; a loss must be a floating-point tensor"
            return CheckResult("scalar", "fail", message, {"dtype": str(output.dtype)})
    return CheckResult("scalar", "pass", "returns a 0-dim floating-point tensor")


def check_finite(calls: list[_Call]) -> CheckResult:
    values = []
    for call in calls:
        value = float(call.output.detach().double())
        values.append(value)
        if not torch.isfinite(call.output.detach()).all():
            evidence = {"value": str(value), "sizes": call.sizes, "inputs": _shapes(call.inputs)}
            return CheckResult(
                "finite", "fail", f"returned {value} on inputs {_shapes(call.inputs)}", evidence
            )
    return CheckResult("finite", "pass", "finite on every trial", {"values": values})


def check_gradients(calls: list[_Call]) -> CheckResult:
    norms: dict[str, float] = {}
    for call in calls:
        float_inputs = {n: t for n, t in call.inputs.items() if t.is_floating_point()}
        if not float_inputs:
            return CheckResult("gradients", "skip", "no float inputs")
        try:
            call.output.backward()
        except RuntimeError as exc:
            error = describe_exception(exc)
            return CheckResult(
                "gradients", "fail", f"backward failed: {error['message']}", {"error": error}
            )

        for name, tensor in float_inputs.items():
            grad = tensor.grad
            if grad is None:
                return CheckResult(
                    "gradients",
                    "fail",
                    f"no gradient reaches {name!r} (detached or unused)",
                    {"input": name},
                )
            if not torch.isfinite(grad).all():
                return CheckResult(
                    "gradients",
                    "fail",
                    f"non-finite gradient for {name!r}",
                    {"input": name, "sizes": call.sizes},
                )
            norms[name] = max(norms.get(name, 0.0), float(grad.norm()))

    zero = [name for name, norm in norms.items() if norm == 0.0]
    if zero:
        return CheckResult(
            "gradients",
            "fail",
            f"the gradient is zero on every trial for {', '.join(zero)}",
            {"norms": norms},
        )
    return CheckResult(
        "gradients", "pass", "finite, non-zero gradients for every float input", {"norms": norms}
    )


def run_contract_checks(fn: LossFunction, spec: InputSpec, seed: int = 0) -> list[CheckResult]:
    """Run the contract checks in order; a check whose precondition failed is skipped."""
    results: list[CheckResult] = []

    def timed(check: Callable[[], CheckResult]) -> CheckResult:
        started = time.perf_counter()
        result = check()
        result.seconds = time.perf_counter() - started
        results.append(result)
        return result

    if not timed(lambda: check_signature(fn, spec)).passed:
        return results

    calls = [_call(fn, spec, sizes, seed + index) for index, sizes in enumerate(spec.trial_sizes())]
    steps: list[tuple[str, Callable[[], CheckResult]]] = [
        ("runs", lambda: check_runs(calls)),
        ("scalar", lambda: check_scalar(calls)),
        ("finite", lambda: check_finite(calls)),
        ("gradients", lambda: check_gradients(calls)),
    ]
    for position, (_, check) in enumerate(steps):
        if not timed(check).passed:
            for later, _unused in steps[position + 1 :]:
                results.append(
                    CheckResult(later, "skip", "skipped because an earlier check failed")
                )
            break
    return results
