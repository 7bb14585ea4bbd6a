"""``lossmagic check`` run as a user would: real files, the real sandbox, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

CLASSIFY = "logits:float[N,C] targets:long[N]<C"

FOCAL = """
import torch.nn.functional as F


def focal(logits, targets, gamma=2.0):
    log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def _helper():
    return None
"""

SUMMED = """
import torch.nn.functional as F


def loss_fn(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_correct_loss_exits_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "focal.py", FOCAL)
    result = run_cli("check", str(path), "--inputs", CLASSIFY, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trainable" in result.stdout
    assert "passed: focal" in result.stdout


def test_failing_check_exits_one_with_json(tmp_path: Path) -> None:
    path = write(tmp_path, "summed.py", SUMMED)
    result = run_cli("check", str(path), "--inputs", CLASSIFY, "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert report["error"]["class"] == "wrong_reduction"
    failed = [c["name"] for c in report["checks"] if c["verdict"] == "fail"]
    assert failed == ["reduction"]


def test_task_allows_a_sum(tmp_path: Path) -> None:
    path = write(tmp_path, "summed.py", SUMMED)
    task = "cross-entropy summed over the batch"
    result = run_cli("check", str(path), "--inputs", CLASSIFY, "--task", task, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


MODULE = """
import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, targets):
        ce = F.cross_entropy(logits, targets, reduction="none")
        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()
"""


def test_module_class_is_found(tmp_path: Path) -> None:
    path = write(tmp_path, "focal_module.py", MODULE)
    args = ["check", str(path), "--inputs", CLASSIFY, "--no-probes", "--json"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["name"] == "FocalLoss"
    assert "trainable" not in [c["name"] for c in report["checks"]]


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    path = write(tmp_path, "focal.py", FOCAL)
    cases = {
        "missing file": (["check", str(tmp_path / "nope.py")], "no loss file"),
        "no such function": (["check", str(path), "--name", "dice"], "no function or class"),
        "spec too short": (["check", str(path), "--inputs", "logits:float[N,C]"], "no value for"),
        "bad spec": (["check", str(path), "--inputs", "logits:flt[N]"], "unknown dtype"),
    }
    for label, (args, message) in cases.items():
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, label
        assert message in result.stderr, label


DISTILL = """
import torch.nn.functional as F


def loss_fn(student, teacher):
    log_p = F.log_softmax(student / 4.0, dim=-1)
    q = F.softmax(teacher / 4.0, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean"){scale}
"""


def test_task_reference_decides_scale(tmp_path: Path) -> None:
    task = "knowledge distillation loss with temperature 4"
    spec = "student:float[N,C] teacher:float[N,C]"
    unscaled = write(tmp_path, "unscaled.py", DISTILL.format(scale=""))
    scaled = write(tmp_path, "scaled.py", DISTILL.format(scale=" * 16.0"))

    rejected = run_cli("check", str(unscaled), "--inputs", spec, "--task", task, cwd=tmp_path)
    accepted = run_cli("check", str(scaled), "--inputs", spec, "--task", task, cwd=tmp_path)

    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "reference" in rejected.stdout
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
