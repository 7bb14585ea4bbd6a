"""Generated tests: splitting model output into tests and running each one as evidence."""

from __future__ import annotations

import pytest

from lossmagic.checks.generated import GeneratedTest, split_tests
from lossmagic.sandbox import Sandbox

SPEC = "predictions:float[N,1] targets:float[N,1]"
MSE = (
    "import torch\n\n\ndef loss_fn(predictions, targets):\n"
    "    return ((predictions - targets) ** 2).mean()\n"
)

MODEL_OUTPUT = """```python
import torch


def test_known_value():
    predictions = torch.tensor([[1.0], [3.0]])
    targets = torch.tensor([[0.0], [1.0]])
    assert abs(loss_fn(predictions, targets).item() - 2.5) < 1e-4


def helper(x):
    return x


def test_needs_argument(x):
    assert loss_fn(x, x) == 0


def test_no_call():
    assert 1 + 1 == 2


def test_known_value():
    assert False


def test_cut_off():
    predictions = torch.tensor([[1.0],
"""


def run_tests(sources: dict[str, str], code: str = MSE) -> dict[str, object]:
    tests = [GeneratedTest(name, source).to_dict() for name, source in sources.items()]
    report = Sandbox(timeout=60).validate(
        code, "loss_fn", SPEC, options={"tests": tests, "name": "loss_fn", "probes": False}
    )
    return {c.name: c for c in report.checks if c.name.startswith("test:")}


def test_split_keeps_runnable_tests_only() -> None:
    tests = split_tests(MODEL_OUTPUT, "loss_fn")
    assert [t.name for t in tests] == ["test_known_value"]
    assert tests[0].source.startswith("def test_known_value():")
    assert "2.5" in tests[0].source


def test_split_without_fences_and_limit() -> None:
    text = "\n\n".join(f"def test_{i}():\n    assert loss_fn(1, 2) == {i}" for i in range(12))
    assert len(split_tests(text, "loss_fn")) == 8
    assert split_tests(text, "other_name") == []


def test_each_test_has_its_own_record() -> None:
    results = run_tests(
        {
            "test_pass": (
                "def test_pass():\n"
                "    x = torch.ones(3, 1)\n"
                "    assert loss_fn(x, x).item() == 0.0\n"
            ),
            "test_value": (
                "def test_value():\n"
                "    p = torch.zeros(2, 1)\n"
                "    t = torch.ones(2, 1)\n"
                "    assert loss_fn(p, t).item() == 2.0\n"
            ),
            "test_close": (
                "def test_close():\n"
                "    p = torch.zeros(2, 1)\n"
                "    assert torch.allclose(loss_fn(p, p + 1), torch.tensor(0.5))\n"
            ),
        }
    )

    assert results["test:test_pass"].passed
    value = results["test:test_value"]
    assert value.failed
    assert not value.authoritative
    assert value.message == "assert loss_fn(p, t).item() == 2.0  # got 1.0 vs 2.0"
    assert value.evidence["test_fault"] == ""
    close = results["test:test_close"]
    assert close.failed
    assert "# got tensor(1.0, float32), tensor(0.5, float32)" in close.message


@pytest.mark.parametrize(
    ("source", "fault"),
    [
        (
            "def test_t():\n    x = torch.randn(3, 1)\n    assert loss_fn(x, x).shape == (1,)\n",
            "expects a non-scalar shape",
        ),
        (
            "def test_t():\n    x = torch.randn(3)\n    assert loss_fn(x, x) > 1\n",
            "passes predictions with 1 dim(s)",
        ),
        (
            "def test_t():\n"
            "    x = torch.ones(3, 1, dtype=torch.long)\n"
            "    assert loss_fn(x, x) > 1\n",
            "passes predictions as int64",
        ),
        (
            "def test_t():\n    x = torch.randn(3, 1)\n    assert loss_fn(x) > 1\n",
            "passes 1 argument(s)",
        ),
        ("def test_t():\n    assert undefined_name > 1\n", "the test's own code raised NameError"),
        ("def test_t():\n    x = torch.randn(3, 1)\n    assert x.sum() > 1e9\n", "never calls"),
    ],
)
def test_contract_contradictions_are_test_faults(source: str, fault: str) -> None:
    result = run_tests({"test_t": source})["test:test_t"]
    assert result.failed
    assert fault in result.evidence["test_fault"]


def test_crash_inside_candidate_is_a_code_fault() -> None:
    crashing = MSE.replace("return", "raise ValueError('boom')\n    return")
    source = "def test_t():\n    x = torch.randn(3, 1)\n    assert loss_fn(x, x) >= 0\n"
    result = run_tests({"test_t": source}, code=crashing)["test:test_t"]
    assert result.failed
    assert result.evidence["error"]["in_candidate"]
    assert result.evidence["test_fault"] == ""


def test_hanging_test_times_out() -> None:
    source = "def test_t():\n    while True:\n        loss_fn(torch.ones(1, 1), torch.ones(1, 1))\n"
    result = run_tests({"test_t": source})["test:test_t"]
    assert result.failed
    assert "did not finish within 5 s" in result.message
