"""The sandbox with real worker processes: verdicts, limits, lifecycle and the static screen."""

from __future__ import annotations

import inspect
import os
import signal
import time

import pytest
import torch

from lossmagic.errors import classify
from lossmagic.exceptions import LossMagicError, SandboxError
from lossmagic.inject import compile_validated
from lossmagic.records import source_hash
from lossmagic.sandbox import JobLimits, Sandbox, screen_check, screen_source
from lossmagic.sandbox.isolation import list_descendants

SPEC = "predictions:float[N,1] targets:float[N,1]"
CONTRACT_ONLY = {"probes": False}

MSE = """import torch


def loss_fn(predictions, targets):
    return torch.mean((predictions - targets) ** 2)
"""


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout=5, limits=JobLimits(cpu_seconds=10, memory_bytes=512 * 2**20)) as box:
        yield box


def test_valid_loss_passes(sandbox: Sandbox) -> None:
    report = sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert report.outcome == "completed"
    assert report.passed
    assert [c.name for c in report.checks][:3] == ["compiles", "defines", "signature"]


def test_worker_is_reused(sandbox: Sandbox) -> None:
    sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
    first = sandbox.processes()
    report = sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert report.passed
    assert sandbox.processes()[0] == first[0]


def test_jobs_run_in_private_directory_with_scrubbed_environment(sandbox: Sandbox) -> None:
    os.environ["LOSSMAGIC_TEST_SECRET"] = "hunter2"
    try:
        source = (
            "import os\n\n\ndef loss_fn(predictions, targets):\n"
            "    raise ValueError(repr((os.getcwd(), sorted(os.environ))))\n"
        )
        report = Sandbox(timeout=5, screen=False).validate(
            source, "loss_fn", SPEC, options=CONTRACT_ONLY
        )
    finally:
        del os.environ["LOSSMAGIC_TEST_SECRET"]

    message = next(c.message for c in report.checks if c.failed)
    assert "lossmagic-job-" in message
    assert "LOSSMAGIC_TEST_SECRET" not in message
    assert "'HOME'" in message


def test_screen_rejects_before_running(sandbox: Sandbox) -> None:
    source = "import os\n\n\ndef loss_fn(predictions, targets):\n    os.remove('x')\n"
    report = sandbox.validate(source, "loss_fn", SPEC)

    assert report.outcome == "rejected"
    assert [c.name for c in report.checks] == ["screen"]
    error = classify(report.checks)
    assert error is not None
    assert error.error_class.value == "disallowed_code"
    assert "line 1" in error.message


def test_syntax_error_reaches_compile_check(sandbox: Sandbox) -> None:
    report = sandbox.validate("def loss_fn(a, b)\n    return a\n", "loss_fn", SPEC)

    assert report.outcome == "completed"
    assert report.checks[0].name == "compiles"
    assert report.checks[0].failed


def test_timeout_kills_job_and_worker_survives(sandbox: Sandbox) -> None:
    source = "def loss_fn(predictions, targets):\n    while True:\n        pass\n"
    started = time.monotonic()
    report = sandbox.validate(source, "loss_fn", SPEC, timeout=1.0)
    elapsed = time.monotonic() - started

    assert report.outcome == "timeout"
    assert report.checks[-1].name == "timeout"
    assert elapsed < 4.0
    assert sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY).passed


def test_crashed_worker_is_replaced(sandbox: Sandbox) -> None:
    sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
    worker = sandbox.processes()[0]
    os.kill(worker, signal.SIGKILL)

    report = sandbox.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert report.passed
    assert worker not in sandbox.processes()


def test_segfault_is_a_crash() -> None:
    source = (
        "import ctypes\n\n\ndef loss_fn(predictions, targets):\n    return ctypes.string_at(0)\n"
    )
    with Sandbox(timeout=5, screen=False) as box:
        report = box.validate(source, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert not report.passed
    assert report.checks[-1].name in ("crash", "runs")


def test_restart_and_close(sandbox: Sandbox) -> None:
    box = Sandbox(timeout=5)
    box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
    old = box.processes()

    box.restart()
    assert not any(pid in list_descendants(os.getpid()) for pid in old)
    assert box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY).passed

    box.close()
    with pytest.raises(SandboxError, match="closed"):
        box.validate(MSE, "loss_fn", SPEC)


def test_oneshot_worker_runs_each_job_in_fresh_process() -> None:
    looping = "def loss_fn(predictions, targets):\n    while True:\n        pass\n"
    with Sandbox(timeout=5, worker_mode="oneshot") as box:
        first = box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
        timed_out = box.validate(looping, "loss_fn", SPEC, timeout=1.0)
        leftovers = box.processes()[1:]

    assert first.passed
    assert timed_out.outcome == "timeout"
    assert first.extra["pid"] != timed_out.extra["pid"]
    assert first.extra["pid"] not in leftovers
    assert timed_out.extra["pid"] not in leftovers


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("import subprocess\n", "'subprocess'"),
        ("from torch.utils.data import DataLoader\n", "'torch.utils.data'"),
        ("import torch.hub\n", "'torch.hub'"),
        ("x = eval('1')\n", "'eval'"),
        ("x = __import__('os')\n", "'__import__'"),
        ("f = open('/etc/passwd')\n", "'open'"),
        ("import torch\nx = torch.load('w.pt')\n", "'load'"),
        ("import torch\ntorch.save(1, 'w.pt')\n", "'save'"),
        ("x = (1).__class__\n", "'__class__'"),
        ("x = getattr(1, '__class__')\n", "'__class__'"),
        ("x = getattr(1, name)\n", "literal attribute name"),
        ("x = loader(num_workers=2)\n", "num_workers"),
        ("from . import sibling\n", "relative imports"),
        ("import torch\ntorch.isfinite = abs\n", "'torch'"),
        ("import torch.nn.functional as F\nF.mse_loss.x = 1\n", "'F'"),
        ("from torch import nn\ndel nn.MSELoss\n", "'nn'"),
        ("import typing\ntyping.sys.modules['os'].system('id')\n", "'system'"),
        ("import numpy as np\nx = np.loadtxt('/etc/passwd')\n", "'loadtxt'"),
        ("import numpy as np\nnp.savetxt('out.txt', [1])\n", "'savetxt'"),
    ],
)
def test_screen_rejects(source: str, fragment: str) -> None:
    findings = screen_source(source)

    assert findings, source
    assert fragment in findings[0].message


def test_screen_allows_ordinary_losses() -> None:
    source = (
        "from __future__ import annotations\n"
        "import math\nfrom typing import Optional\nimport numpy as np\n"
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
        "class FocalLoss(nn.Module):\n"
        "    def __init__(self, gamma: float = 2.0) -> None:\n"
        "        super().__init__()\n        self.gamma = gamma\n\n"
        "    def forward(self, logits, targets):\n"
        "        ce = F.cross_entropy(logits, targets, reduction='none')\n"
        "        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean() * math.log(2)\n"
    )

    assert screen_source(source) == []
    assert screen_check(source) is None


def test_injection_defines_exact_validated_source() -> None:
    loss_fn = compile_validated(MSE, source_hash(MSE), "loss_fn")

    assert inspect.getsource(loss_fn) == MSE.split("\n\n\n", 1)[1]
    assert float(loss_fn(torch.ones(2, 1), torch.zeros(2, 1))) == 1.0


def test_injection_rejects_changed_source() -> None:
    changed = MSE.replace("** 2", "** 3")

    with pytest.raises(LossMagicError, match="differs from the validated hash"):
        compile_validated(changed, source_hash(MSE), "loss_fn")


def test_fallback_without_namespaces(caplog: pytest.LogCaptureFixture) -> None:
    looping = "def loss_fn(predictions, targets):\n    while True:\n        pass\n"
    with Sandbox(timeout=1.5, namespaces=False) as box:
        passing = box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
        timed_out = box.validate(looping, "loss_fn", SPEC)
        after = box.validate(MSE, "loss_fn", SPEC, options=CONTRACT_ONLY)
        processes = box.processes()

    assert passing.passed
    assert timed_out.outcome == "timeout"
    assert after.passed
    assert len(processes) == 2
    assert "namespaces are turned off" in caplog.text


def test_home_and_temp_directories_are_unreadable() -> None:
    home = os.path.expanduser("~")
    source = (
        "import os\n\n\ndef loss_fn(predictions, targets):\n"
        f"    for path in ({home!r}, '/tmp'):\n"
        "        try:\n            os.listdir(path)\n"
        "        except PermissionError:\n            continue\n"
        "        raise ValueError('readable: ' + path)\n"
        "    return (predictions - targets).pow(2).mean()\n"
    )
    with Sandbox(timeout=5, screen=False) as box:
        report = box.validate(source, "loss_fn", SPEC, options=CONTRACT_ONLY)

    assert report.passed, [c.message for c in report.checks if c.failed]
