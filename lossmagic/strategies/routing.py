"""Routed repair: a repair instruction and the evidence to show for each error class."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import Any

from lossmagic.checks.base import CheckResult
from lossmagic.errors import ErrorClass, ErrorInfo

__all__ = ["REPAIR_INSTRUCTIONS", "mechanical_repair", "repair_evidence", "repair_instruction"]

REPAIR_INSTRUCTIONS: dict[ErrorClass, str] = {
    ErrorClass.SYNTAX: "Write complete, valid Python: close every bracket and string.",
    ErrorClass.DISALLOWED: (
        "Use only torch, torch.nn.functional and math: no files, processes, network or eval."
    ),
    ErrorClass.SIGNATURE: (
        "Define exactly the requested name with the inputs in the given order; "
        "any extra parameter needs a default."
    ),
    ErrorClass.IMPORT: "Import only torch, torch.nn.functional as F, and math.",
    ErrorClass.SHAPE: (
        "The shapes below do not fit together. Reshape with unsqueeze, squeeze or view so "
        "that both sides of each operation have matching or broadcastable shapes."
    ),
    ErrorClass.DTYPE: (
        "Convert dtypes explicitly: class indices must stay long for indexing and "
        "cross_entropy; use .float() before arithmetic with float tensors."
    ),
    ErrorClass.DEVICE: "Create new tensors on the inputs' device, e.g. torch.zeros_like(x).",
    ErrorClass.RUNTIME: "Fix the error at the line shown.",
    ErrorClass.NON_SCALAR: "Reduce the per-element loss to one value with .mean().",
    ErrorClass.NAN_INF: (
        "The inputs below produced NaN or Inf. Use log_softmax or logsigmoid instead of "
        "log(softmax) or log(sigmoid), clamp before log and division, and add an epsilon."
    ),
    ErrorClass.GRADIENT: (
        "Keep the computation differentiable: no .item(), .detach(), argmax, rounding or "
        "new tensors built from values; every float input must affect the loss."
    ),
    ErrorClass.IN_PLACE: "Do not modify the inputs: no +=, *=, clamp_ or [...] = on them.",
    ErrorClass.NONDETERMINISTIC: "Remove randomness: the same inputs must give the same loss.",
    ErrorClass.TIMEOUT: "Remove Python loops over elements; use vectorized torch operations.",
    ErrorClass.MEMORY: "Avoid building large intermediate tensors; compute in vectorized form.",
    ErrorClass.PROBE: (
        "Training with this loss does not improve the model (curve below). Check the sign, "
        "make lower loss mean better predictions, and compare the right inputs."
    ),
    ErrorClass.TEST_FAILED: (
        "A test written from the task failed with the value shown. Recheck the formula "
        "against the task; keep the function otherwise unchanged."
    ),
    ErrorClass.TEST_FAULT: "The test was wrong; keep the function.",
    ErrorClass.SANDBOX: "Simplify the function.",
}

_EVIDENCE_LIMIT = 900
_KEYS_BY_CLASS: dict[ErrorClass, tuple[str, ...]] = {
    ErrorClass.SHAPE: ("error", "inputs", "locals", "sizes"),
    ErrorClass.DTYPE: ("error", "inputs", "locals"),
    ErrorClass.NAN_INF: ("value", "variant", "inputs", "values", "sizes"),
    ErrorClass.NON_SCALAR: ("shape", "inputs"),
    ErrorClass.PROBE: ("curve", "losses", "metric", "chance", "before", "after"),
    ErrorClass.TEST_FAILED: ("assert_source", "got", "source"),
    ErrorClass.GRADIENT: ("input", "norms"),
}


def repair_instruction(error_class: ErrorClass) -> str:
    """Return the repair instruction for an error class."""
    return REPAIR_INSTRUCTIONS.get(error_class, REPAIR_INSTRUCTIONS[ErrorClass.RUNTIME])


def repair_evidence(error: ErrorInfo, checks: Sequence[CheckResult], code: str = "") -> str:
    """Describe the failure for a repair prompt: the message plus the class's evidence.

    ``code`` is the failing candidate's source, to quote the line that raised.
    """
    check = next((c for c in checks if c.name == error.check), None)
    lines = [f"[{error.error_class}] {error.message.strip()}"]
    if check is None:
        return lines[0]

    failing = check.evidence.get("error")
    line = _failing_line(failing, code)
    if line:
        lines.append(line)
    keys = _KEYS_BY_CLASS.get(error.error_class, ("inputs",))
    shown = {key: check.evidence[key] for key in keys if key in check.evidence and key != "error"}
    if isinstance(failing, dict) and "locals" in failing:
        shown["tensors at the failing line"] = failing["locals"]
    if shown:
        lines.append(f"Evidence: {_compact(shown)}")
    return "\n".join(lines)


def _failing_line(failing: object, code: str) -> str:
    if not isinstance(failing, dict) or not isinstance(failing.get("line"), int):
        return ""
    number = failing["line"]
    text = str(failing.get("code") or "").strip()
    source = code.splitlines()
    if not text and 0 < number <= len(source):
        text = source[number - 1].strip()
    return f"Failing line {number}: {text}" if text else ""


def _compact(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _EVIDENCE_LIMIT else text[:_EVIDENCE_LIMIT] + "..."


class _MeanOfReturns(ast.NodeTransformer):
    """Wrap the value of every ``return`` in ``(...).mean()``."""

    def visit_Return(self, node: ast.Return) -> ast.Return:
        if node.value is None or isinstance(node.value, ast.Tuple):
            return node
        mean = ast.Call(ast.Attribute(node.value, "mean", ast.Load()), [], [])
        return ast.copy_location(ast.Return(mean), node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        # A nested helper keeps its returns: only the loss's own returns are reduced.
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
        return node


def mechanical_repair(error_class: ErrorClass, code: str, name: str) -> str | None:
    """Return ``code`` fixed without a model for a class that has one sure fix, or None.

    A non-scalar loss gets ``.mean()`` around each value its function returns (the
    ``forward`` of a module class). The checks still decide whether the result is right.
    """
    if error_class is not ErrorClass.NON_SCALAR:
        return None
    try:
        module = ast.parse(code)
    except SyntaxError:
        return None
    target = _loss_function(module, name)
    if target is None:
        return None
    before = ast.dump(target)
    target.body = [_MeanOfReturns().visit(statement) for statement in target.body]
    if ast.dump(target) == before:
        return None
    return ast.unparse(ast.fix_missing_locations(module)) + "\n"


def _loss_function(module: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if isinstance(node, ast.ClassDef) and node.name == name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    return item
    return None
