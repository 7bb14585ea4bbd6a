"""Error classification from execution evidence, and the rules for a model's blame."""

from __future__ import annotations

import pytest

from lossmagic.checks.base import CheckResult
from lossmagic.errors import (
    ErrorClass,
    classify,
    classify_tests,
    parse_blame,
    resolve_blame,
    suspect_tests,
)
from lossmagic.sandbox import Sandbox

SPEC = "logits:float[N,C] targets:long[N]<C"


def runs_failure(kind: str, message: str, in_candidate: bool = True) -> CheckResult:
    error: dict[str, object] = {"type": kind, "message": message, "in_candidate": in_candidate}
    if in_candidate:
        error.update(line=5, code="return x")
    return CheckResult("runs", "fail", f"{kind}: {message}", {"error": error})


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            runs_failure(
                "RuntimeError", "The size of tensor a (5) must match the size of tensor b"
            ),
            ErrorClass.SHAPE,
        ),
        (
            runs_failure("RuntimeError", "mat1 and mat2 shapes cannot be multiplied"),
            ErrorClass.SHAPE,
        ),
        (
            runs_failure("RuntimeError", "expected scalar type Long but found Float"),
            ErrorClass.DTYPE,
        ),
        (
            runs_failure("RuntimeError", "Expected all tensors to be on the same device"),
            ErrorClass.DEVICE,
        ),
        (runs_failure("ModuleNotFoundError", "No module named 'sklearn'"), ErrorClass.IMPORT),
        (runs_failure("ZeroDivisionError", "division by zero"), ErrorClass.RUNTIME),
        (runs_failure("KeyError", "'x'", in_candidate=False), ErrorClass.SANDBOX),
        (CheckResult("scalar", "fail", "returned shape (4,)"), ErrorClass.NON_SCALAR),
        (CheckResult("finite", "fail", "returned nan"), ErrorClass.NAN_INF),
        (CheckResult("gradients", "fail", "no gradient reaches 'logits'"), ErrorClass.GRADIENT),
        (CheckResult("no_in_place", "fail", "modified logits"), ErrorClass.IN_PLACE),
        (CheckResult("deterministic", "fail", "changed"), ErrorClass.NONDETERMINISTIC),
        (CheckResult("timeout", "fail", "too slow"), ErrorClass.TIMEOUT),
        (CheckResult("crash", "fail", "killed", {"exit_code": -9}), ErrorClass.MEMORY),
        (CheckResult("crash", "fail", "ended", {"exit_code": 1}), ErrorClass.SANDBOX),
        (CheckResult("trainability", "fail", "accuracy stayed at chance"), ErrorClass.PROBE),
        (CheckResult("better_is_lower", "fail", "targets score worse"), ErrorClass.PROBE),
        (CheckResult("screen", "fail", "imports os"), ErrorClass.DISALLOWED),
        (CheckResult("defines", "fail", "no callable"), ErrorClass.SIGNATURE),
    ],
)
def test_classify_from_evidence(check: CheckResult, expected: ErrorClass) -> None:
    error = classify([CheckResult("compiles", "pass"), check])
    assert error is not None
    assert error.error_class is expected
    assert error.check == check.name


def test_classify_ignores_evidence_checks() -> None:
    checks = [
        CheckResult("runs", "pass"),
        CheckResult("test:test_value", "fail", "assert 1 == 2", authoritative=False),
    ]
    assert classify(checks) is None


def test_syntax_error_at_load() -> None:
    evidence = {"error": {"type": "SyntaxError", "message": "invalid syntax", "line": 3}}
    error = classify([CheckResult("compiles", "fail", "SyntaxError", evidence)])
    assert error is not None
    assert error.error_class is ErrorClass.SYNTAX


def test_real_shape_error_in_sandbox() -> None:
    source = (
        "import torch\n\n\ndef loss_fn(logits, targets):\n"
        "    onehot = torch.zeros(logits.shape[0], logits.shape[1] + 1)\n"
        "    return ((logits - onehot) ** 2).mean()\n"
    )
    report = Sandbox(timeout=60).validate(source, "loss_fn", SPEC, options={"probes": False})
    error = classify(report.checks)

    assert error is not None
    assert error.error_class is ErrorClass.SHAPE
    failing = next(c for c in report.checks if c.name == error.check)
    assert failing.evidence["error"]["line"] == 6


def test_test_fault_versus_code_fault() -> None:
    fault = CheckResult(
        "test:test_shape", "fail", "assert shape", {"test_fault": "expects a shape"}, False
    )
    code = CheckResult("test:test_value", "fail", "assert 1.5 == 2.5", {"test_fault": ""}, False)

    first = classify_tests([fault, code])
    assert first is not None
    assert first.error_class is ErrorClass.TEST_FAILED
    assert first.check == "test:test_value"

    only_fault = classify_tests([fault])
    assert only_fault is not None
    assert only_fault.error_class is ErrorClass.TEST_FAULT

    suspected = classify_tests([code], suspects=frozenset({"test:test_value"}))
    assert suspected is not None
    assert suspected.error_class is ErrorClass.TEST_FAULT

    assert classify_tests([CheckResult("test:test_ok", "pass", authoritative=False)]) is None


def test_suspects_need_two_failing_candidates() -> None:
    failing = [CheckResult("test:test_a", "fail", authoritative=False)]
    passing = [CheckResult("test:test_a", "pass", authoritative=False)]

    assert suspect_tests([failing]) == frozenset()
    assert suspect_tests([failing, failing]) == frozenset({"test:test_a"})
    assert suspect_tests([failing, passing]) == frozenset()


@pytest.mark.parametrize(
    ("text", "blame"),
    [
        ("loss", "loss"),
        (" Loss.", "loss"),
        ("test", "test"),
        ("Tests are wrong", "test"),
        ("unknown", "unknown"),
        ("", "unknown"),
        ("I think the loss", "unknown"),
    ],
)
def test_parse_blame(text: str, blame: str) -> None:
    assert parse_blame(text) == blame


def test_blame_never_trusted_alone() -> None:
    assert resolve_blame("test", authoritative_passed=True) is ErrorClass.TEST_FAULT
    assert resolve_blame("test", authoritative_passed=False) is ErrorClass.TEST_FAILED
    assert resolve_blame("loss", authoritative_passed=True) is ErrorClass.TEST_FAILED
    assert resolve_blame("unknown", authoritative_passed=True) is ErrorClass.TEST_FAILED
