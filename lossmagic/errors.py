"""The error taxonomy, and classification of a failed iteration from its evidence.

Classification is deterministic: it reads the extraction error, the failing check, the
exception type and message recorded in that check's evidence, and whether the failing
frame was in the candidate's file. A model's one-word blame is used only by
``resolve_blame``, to break a tie that the evidence cannot settle, and only together
with the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from lossmagic.checks.base import CheckResult
from lossmagic.checks.generated import TEST_PREFIX

__all__ = [
    "Blame",
    "ErrorClass",
    "ErrorInfo",
    "classify",
    "classify_exception",
    "classify_tests",
    "parse_blame",
    "resolve_blame",
    "suspect_tests",
]

Blame = Literal["loss", "test", "unknown"]


class ErrorClass(str, Enum):
    """One entry of the taxonomy of ways a candidate can fail."""

    SYNTAX = "syntax"
    DISALLOWED = "disallowed_code"
    SIGNATURE = "missing_function_or_signature"
    IMPORT = "import"
    SHAPE = "shape_or_broadcast"
    DTYPE = "dtype"
    DEVICE = "device"
    RUNTIME = "runtime_error"
    NON_SCALAR = "non_scalar"
    REDUCTION = "wrong_reduction"
    NAN_INF = "nan_or_inf"
    GRADIENT = "missing_or_zero_gradient"
    IN_PLACE = "in_place_modification"
    NONDETERMINISTIC = "non_determinism"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    PROBE = "probe_failed"
    TEST_FAILED = "generated_test_failed"
    TEST_FAULT = "generated_test_fault"
    SANDBOX = "sandbox_failure"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorInfo:
    """The class of a failure, a one-line message, and the check it came from."""

    error_class: ErrorClass
    message: str
    check: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"class": self.error_class.value, "message": self.message, "check": self.check}


# Check name -> class, for checks whose failure means one thing whatever the evidence.
_CHECK_CLASSES = {
    "screen": ErrorClass.DISALLOWED,
    "defines": ErrorClass.SIGNATURE,
    "signature": ErrorClass.SIGNATURE,
    "scalar": ErrorClass.NON_SCALAR,
    "finite": ErrorClass.NAN_INF,
    "gradients": ErrorClass.GRADIENT,
    "no_in_place": ErrorClass.IN_PLACE,
    "deterministic": ErrorClass.NONDETERMINISTIC,
    "reduction": ErrorClass.REDUCTION,
    "precision": ErrorClass.NAN_INF,
    "device": ErrorClass.DEVICE,
    "time": ErrorClass.TIMEOUT,
    "better_is_lower": ErrorClass.PROBE,
    "trainable": ErrorClass.PROBE,
    "timeout": ErrorClass.TIMEOUT,
    "memory": ErrorClass.MEMORY,
}

# Fragments of PyTorch error messages, in the order they are tried.
_MESSAGE_CLASSES: tuple[tuple[ErrorClass, tuple[str, ...]], ...] = (
    (ErrorClass.DEVICE, ("expected all tensors to be on the same device", "cuda", "device")),
    (
        ErrorClass.SHAPE,
        (
            "size of tensor",
            "must match the size",
            "shape",
            "mat1 and mat2",
            "broadcast",
            "dimension out of range",
            "dimension specified",
            "out of bounds",
            "size mismatch",
            "expected input batch_size",
            "target size",
            "elements",
            "view size",
        ),
    ),
    (
        ErrorClass.DTYPE,
        (
            "expected scalar type",
            "dtype",
            "long",
            "not implemented for",
            "floating point",
            "result type",
        ),
    ),
)


def classify_exception(evidence: dict[str, object]) -> ErrorClass:
    """Classify an exception summary from ``describe_exception``."""
    kind = str(evidence.get("type", ""))
    message = str(evidence.get("message", "")).lower()

    if kind == "SyntaxError" or kind == "IndentationError":
        return ErrorClass.SYNTAX
    if kind in ("ImportError", "ModuleNotFoundError"):
        return ErrorClass.IMPORT
    if kind == "MemoryError":
        return ErrorClass.MEMORY
    if kind in ("RuntimeError", "ValueError", "IndexError", "TypeError"):
        for error_class, fragments in _MESSAGE_CLASSES:
            if any(fragment in message for fragment in fragments):
                return error_class
    return ErrorClass.RUNTIME


def classify(checks: Sequence[CheckResult]) -> ErrorInfo | None:
    """Classify the first failed authoritative check; return None when none failed."""
    for check in checks:
        if not check.failed or not check.authoritative:
            continue
        return ErrorInfo(_check_class(check), check.message, check.name)
    return None


def _check_class(check: CheckResult) -> ErrorClass:
    error = check.evidence.get("error")
    if check.name in _CHECK_CLASSES and not (check.name == "signature" and error):
        return _CHECK_CLASSES[check.name]
    if check.name == "crash":
        exit_code = check.evidence.get("exit_code")
        return ErrorClass.MEMORY if exit_code in (-9, 137) else ErrorClass.SANDBOX
    if isinstance(error, dict):
        error_class = classify_exception(error)
        candidate_frame = "line" in error or error.get("in_candidate")
        if error_class is ErrorClass.RUNTIME and not candidate_frame:
            # Nothing in candidate.py was on the stack, so the harness itself failed.
            return ErrorClass.SANDBOX
        return error_class
    if any(word in check.name for word in _PROBE_WORDS):
        return ErrorClass.PROBE
    return ErrorClass.RUNTIME


_PROBE_WORDS = ("probe", "train", "better", "lower", "improve")


def classify_tests(
    checks: Sequence[CheckResult], suspects: frozenset[str] = frozenset()
) -> ErrorInfo | None:
    """Classify the first failed generated test, preferring faults of the code.

    A test whose evidence names a contract fault, or that is in ``suspects`` (it failed
    on every candidate), is a test fault; any other failed test is a fault of the code.
    """
    failed = [c for c in checks if c.name.startswith(TEST_PREFIX) and c.failed]
    code_faults = [c for c in failed if not c.evidence.get("test_fault") and c.name not in suspects]
    if code_faults:
        return ErrorInfo(ErrorClass.TEST_FAILED, code_faults[0].message, code_faults[0].name)
    if failed:
        check = failed[0]
        reason = check.evidence.get("test_fault") or "it fails on every candidate"
        return ErrorInfo(ErrorClass.TEST_FAULT, f"{check.message} ({reason})", check.name)
    return None


def suspect_tests(candidates: Sequence[Sequence[CheckResult]]) -> frozenset[str]:
    """Return the tests that failed on every candidate that ran them, given two or more."""
    runs: dict[str, list[bool]] = {}
    for checks in candidates:
        for check in checks:
            if check.name.startswith(TEST_PREFIX) and check.verdict != "skip":
                runs.setdefault(check.name, []).append(check.passed)
    return frozenset(name for name, passed in runs.items() if len(passed) >= 2 and not any(passed))


def parse_blame(text: str) -> Blame:
    """Read a model's one-word blame; anything but a clear loss or test is unknown."""
    words = re.findall(r"[a-z]+", text.lower())
    first = words[0] if words else ""
    if first in ("loss", "code", "function"):
        return "loss"
    if first in ("test", "tests"):
        return "test"
    return "unknown"


def resolve_blame(answer: Blame, authoritative_passed: bool) -> ErrorClass:
    """Combine a model's blame for a failed test with the evidence; never the answer alone.

    A test is blamed only when the model says so and the candidate passed every
    authoritative check; otherwise the code is blamed, and its repair must still pass
    every check that passed before.
    """
    if answer == "test" and authoritative_passed:
        return ErrorClass.TEST_FAULT
    return ErrorClass.TEST_FAILED
