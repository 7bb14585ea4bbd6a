"""The error taxonomy, and classification of a failed iteration from its evidence.

Classification is deterministic: it reads the extraction error, the failing check and
the exception type and message recorded in that check's evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from lossmagic.checks.base import CheckResult

__all__ = ["ErrorClass", "ErrorInfo", "classify"]


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

        error = check.evidence.get("error")
        if check.name in _CHECK_CLASSES and not (check.name == "signature" and error):
            error_class = _CHECK_CLASSES[check.name]
        elif isinstance(error, dict):
            error_class = classify_exception(error)
        else:
            error_class = ErrorClass.RUNTIME
        return ErrorInfo(error_class, check.message, check.name)
    return None
