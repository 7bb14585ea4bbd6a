"""Generated tests: model-written tests, run one by one as evidence and never as a verdict.

The model writes the tests from the task text and the signature only, never from a
candidate. ``split_tests`` turns its output into separate ``def test_*():`` functions.
``run_generated_tests`` runs each of them in the sandbox with its own time limit and
returns one non-authoritative CheckResult per test. A failed assert is recorded as
``assert <source>  # got <value>``.

A failure is a *test fault* (``evidence["test_fault"]`` names the reason), not a fault of
the code, when the test contradicts the contract: it calls the loss with inputs that do
not fit the input spec, expects a non-scalar shape from the 0-dim loss, never calls the
loss, or breaks in its own code.
"""

from __future__ import annotations

import ast
import math
import operator
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lossmagic.checks.base import CheckResult, Verdict
from lossmagic.extract import split_code_blocks
from lossmagic.spec import InputSpec

__all__ = [
    "TEST_FILENAME",
    "TEST_PREFIX",
    "GeneratedTest",
    "run_generated_tests",
    "split_tests",
]

TEST_FILENAME = "generated_test.py"
"""The file name that generated tests are compiled under, so tracebacks tell them apart."""

TEST_PREFIX = "test:"
"""Prefix of the check name of every generated test."""

MAX_TESTS = 8
_CALLS_KEPT = 20
"""Calls per test whose inputs and outputs are kept as evidence; the rest are counted."""
TEST_SECONDS = 5.0

_CANDIDATE_FILENAME = "candidate.py"

_SHAPE_WORDS = (".shape", ".size(", ".dim(", ".ndim", "len(", ".numel(", "numel", ".ndimension(")

_COMPARE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": operator.lt,
    "LtE": operator.le,
    "Gt": operator.gt,
    "GtE": operator.ge,
    "Is": operator.is_,
    "IsNot": operator.is_not,
    "In": lambda left, right: left in right,
    "NotIn": lambda left, right: left not in right,
}


@dataclass(frozen=True)
class GeneratedTest:
    """One model-written test function: its name and its source."""

    name: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratedTest:
        return cls(name=str(data["name"]), source=str(data["source"]))


def split_tests(text: str, loss_name: str, limit: int = MAX_TESTS) -> list[GeneratedTest]:
    """Return the top-level ``test_*`` functions in ``text`` that call ``loss_name``.

    Functions that need arguments, duplicates, and a last function cut off mid-way
    are left out, so every returned test can run on its own.
    """
    tests: list[GeneratedTest] = []
    seen: set[str] = set()
    for block in split_code_blocks(text):
        module = _parse_longest_prefix(block)
        if module is None:
            continue
        for node in module.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            required = len(node.args.args) - len(node.args.defaults)
            if required > 0 or node.name in seen or not _calls(node, loss_name):
                continue
            source = ast.get_source_segment(block, node)
            if source is None:
                continue
            seen.add(node.name)
            tests.append(GeneratedTest(node.name, source))
            if len(tests) >= limit:
                return tests
    return tests


def _parse_longest_prefix(block: str) -> ast.Module | None:
    """Parse ``block``, dropping trailing lines until it parses (output may be cut off)."""
    lines = block.splitlines()
    while lines:
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError:
            lines.pop()
    return None


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == name
        for inner in ast.walk(node)
    )


class _AssertFailure(Exception):
    """A generated test's assert failed; it carries the assert's source and the values."""

    def __init__(self, source: str, got: str) -> None:
        super().__init__(source, got)
        self.source = source
        self.got = got

    def __str__(self) -> str:
        return f"assert {self.source}  # got {self.got}"


class _TestTimeout(Exception):
    """A generated test ran past its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"the test did not finish within {self.seconds:.0f} s"


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()[:6].tolist()
        more = ", ..." if value.numel() > 6 else ""
        dtype = str(value.dtype).removeprefix("torch.")
        if value.dim() == 0:
            return f"tensor({flat[0]!r}, {dtype})"
        return f"tensor(shape={tuple(value.shape)}, {dtype}, values={flat}{more})"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _check_compare(source: str, operators: str, *operands: Any) -> None:
    for position, name in enumerate(operators.split(",")):
        left, right = operands[position], operands[position + 1]
        if not bool(_COMPARE_OPERATORS[name](left, right)):
            raise _AssertFailure(source, " vs ".join(_show(value) for value in (left, right)))


def _check_call(source: str, function: Callable[..., Any], *args: Any) -> None:
    if not bool(function(*args)):
        raise _AssertFailure(source, ", ".join(_show(arg) for arg in args))


def _check_truth(source: str, value: Any) -> None:
    if not bool(value):
        raise _AssertFailure(source, _show(value))


class _AssertRewriter(ast.NodeTransformer):
    """Replace each ``assert`` with a helper call that records the values it compared."""

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        source = ast.Constant(ast.unparse(node.test))
        test = node.test
        call: ast.Call
        if isinstance(test, ast.Compare):
            names = tuple(type(op).__name__ for op in test.ops)
            call = ast.Call(
                ast.Name("__check_compare__", ast.Load()),
                [source, ast.Constant(",".join(names)), test.left, *test.comparators],
                [],
            )
        elif (
            isinstance(test, ast.Call)
            and not test.keywords
            and not any(isinstance(arg, ast.Starred) for arg in test.args)
        ):
            call = ast.Call(
                ast.Name("__check_call__", ast.Load()), [source, test.func, *test.args], []
            )
        else:
            call = ast.Call(ast.Name("__check_truth__", ast.Load()), [source, test], [])
        return ast.copy_location(ast.Expr(call), node)


@dataclass
class _CallLog:
    """The calls that a test made to the loss: input descriptions and outputs."""

    calls: int = 0
    inputs: list[list[str]] = field(default_factory=list)
    misfits: list[str] = field(default_factory=list)
    output_dims: list[int] = field(default_factory=list)


def _describe_argument(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return type(value).__name__


def _misfit(spec: InputSpec, args: tuple[Any, ...]) -> str:
    """Return why ``args`` do not fit ``spec``, or an empty string when they fit."""
    if len(args) != len(spec.items):
        return f"passes {len(args)} argument(s) but the loss takes {len(spec.items)}"
    for item, value in zip(spec.items, args, strict=True):
        if not isinstance(value, torch.Tensor):
            return f"passes {item.name} as {type(value).__name__}, not a tensor"
        if value.dim() != len(item.dims):
            return (
                f"passes {item.name} with {value.dim()} dim(s) {tuple(value.shape)}; "
                f"the spec has {len(item.dims)}: {item.shape_text()}"
            )
        for dim, size in zip(item.dims, value.shape, strict=True):
            if isinstance(dim, int) and dim != size:
                return f"passes {item.name} with shape {tuple(value.shape)}; the spec fixes {dim}"
        if item.is_float != value.is_floating_point():
            dtype = str(value.dtype).removeprefix("torch.")
            return f"passes {item.name} as {dtype}; the spec says {item.dtype}"
    return ""


def _recording(function: Callable[..., Any], spec: InputSpec, log: _CallLog) -> Callable[..., Any]:
    def loss(*args: Any, **kwargs: Any) -> Any:
        log.calls += 1
        keep = log.calls <= _CALLS_KEPT
        if keep:
            log.inputs.append([_describe_argument(arg) for arg in args])
        problem = _misfit(spec, args)
        if problem and keep:
            log.misfits.append(problem)
        output = function(*args, **kwargs)
        if isinstance(output, torch.Tensor) and keep:
            log.output_dims.append(output.dim())
        return output

    return loss


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise _TestTimeout(TEST_SECONDS)


def _run_one(
    test: GeneratedTest, function: Callable[..., Any], spec: InputSpec, loss_name: str
) -> CheckResult:
    log = _CallLog()
    evidence: dict[str, Any] = {"source": test.source, "test_fault": ""}
    verdict: Verdict
    check_name = f"{TEST_PREFIX}{test.name}"

    try:
        tree = ast.fix_missing_locations(_AssertRewriter().visit(ast.parse(test.source)))
        code = compile(tree, TEST_FILENAME, "exec")
    except SyntaxError as exc:
        evidence["test_fault"] = f"the test does not compile: {exc.msg}"
        return CheckResult(check_name, "fail", evidence["test_fault"], evidence, False)

    namespace: dict[str, Any] = {
        "torch": torch,
        "F": F,
        "nn": nn,
        "math": math,
        loss_name: _recording(function, spec, log),
        "__check_compare__": _check_compare,
        "__check_call__": _check_call,
        "__check_truth__": _check_truth,
    }
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, TEST_SECONDS)
    try:
        exec(code, namespace)
        namespace[test.name]()
    except _AssertFailure as failure:
        evidence.update(assert_source=f"assert {failure.source}", got=failure.got)
        verdict, message = "fail", str(failure)
    except Exception as exc:  # noqa: BLE001 - whatever the test raises is evidence
        error = _describe_error(exc)
        evidence["error"] = error
        verdict, message = "fail", f"{error['type']}: {error['message']}"
        if not error["in_candidate"] and not log.misfits:
            evidence["test_fault"] = f"the test's own code raised {error['type']}"
    else:
        verdict, message = "pass", f"{test.name} passed"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    evidence["calls"] = log.inputs
    evidence["call_count"] = log.calls
    if verdict == "fail":
        evidence["test_fault"] = evidence["test_fault"] or _contract_fault(log, evidence)
    return CheckResult(check_name, verdict, message, evidence, authoritative=False)


def _contract_fault(log: _CallLog, evidence: dict[str, Any]) -> str:
    """Return how a failed test contradicts the contract, or an empty string."""
    if not log.inputs:
        return "the test never calls the loss"
    if log.misfits:
        return f"the test {log.misfits[0]}, which does not fit the input spec"
    source = str(evidence.get("assert_source", ""))
    scalar_outputs = bool(log.output_dims) and all(d == 0 for d in log.output_dims)
    if scalar_outputs and any(word in source for word in _SHAPE_WORDS):
        return "the test expects a non-scalar shape, but a loss returns a 0-dim tensor"
    return ""


def _describe_error(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "type": type(exc).__name__,
        "message": str(exc).strip()[:1000],
        "in_candidate": any(f.filename.endswith(_CANDIDATE_FILENAME) for f in frames),
        "timeout": isinstance(exc, _TestTimeout),
    }


def run_generated_tests(
    function: Callable[..., Any],
    spec: InputSpec,
    tests: list[dict[str, Any]],
    loss_name: str,
) -> Iterator[CheckResult]:
    """Run each generated test on its own; yield one non-authoritative result per test."""
    for data in tests:
        started = time.perf_counter()
        test = GeneratedTest.from_dict(data)
        result = _run_one(test, function, spec, loss_name)
        result.seconds = time.perf_counter() - started
        yield result
