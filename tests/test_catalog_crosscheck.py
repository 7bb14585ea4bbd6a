"""The semantic cross-check, in-process and through the real sandbox."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

from lossmagic.catalog.retrieval import reference_for
from lossmagic.checks.reference import cross_check, reference_options
from lossmagic.sandbox import Sandbox
from lossmagic.spec import parse_spec

CLASSES = parse_spec("logits:float[N,C] targets:long[N]<C")
DISTILL = "student:float[N,C] teacher:float[N,C]"

KD_CORRECT = """
import torch.nn.functional as F


def kd(student, teacher):
    t = 4.0
    log_p = F.log_softmax(student / t, dim=-1)
    q = F.softmax(teacher / t, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * t * t
"""

KD_NO_SQUARE = KD_CORRECT.replace(" * t * t", "")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout=60.0) as box:
        yield box


def _validate(sandbox: Sandbox, source: str, task: str, spec: str):
    reference = reference_for(task, parse_spec(spec))
    assert reference is not None
    options = {"task": task, "reference": reference}
    report = sandbox.validate(textwrap.dedent(source), "kd", spec, seed=0, options=options)
    return next(check for check in report.checks if check.name == "reference")


def test_builtin_agrees_in_process() -> None:
    option = reference_options("cross_entropy", {}, (0, 1))
    result = cross_check(F.cross_entropy, CLASSES, 0, option)
    assert result.verdict == "pass", result.message
    assert not result.authoritative


def test_wrong_reduction_reports_largest_difference() -> None:
    def summed(logits, targets):
        return F.cross_entropy(logits, targets, reduction="sum")

    result = cross_check(summed, CLASSES, 0, reference_options("cross_entropy", {}, (0, 1)))
    evidence = result.evidence
    assert result.verdict == "fail"
    assert evidence["candidate"] / evidence["expected"] == pytest.approx(evidence["sizes"]["N"])
    assert f"ratio {evidence['sizes']['N']}" in result.message
    assert set(evidence["inputs"]) == {"logits", "targets"}


def test_parameters_from_option_are_used() -> None:
    def smoothed(logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=0.3)

    stated = reference_options("label_smoothing", {"smoothing": 0.3}, (0, 1))
    assert cross_check(smoothed, CLASSES, 0, stated).verdict == "pass"
    default = reference_options("label_smoothing", {}, (0, 1))
    assert cross_check(smoothed, CLASSES, 0, default).verdict == "fail"


def test_input_order_is_mapped() -> None:
    spec = parse_spec("targets:long[N]<C logits:float[N,C]")

    def swapped(targets, logits):
        return F.cross_entropy(logits, targets)

    option = reference_for("cross-entropy loss", spec)
    assert option is not None
    assert option["order"] == [1, 0]
    assert cross_check(swapped, spec, 0, option).verdict == "pass"


def test_published_variant_is_accepted() -> None:
    def over_others(logits, targets):
        classes = logits.shape[-1]
        log_probs = F.log_softmax(logits, dim=-1)
        weights = F.one_hot(targets, classes) * 0.9 + (1 - F.one_hot(targets, classes)) * (
            0.1 / max(classes - 1, 1)
        )
        return -(weights * log_probs).sum(-1).mean()

    result = cross_check(over_others, CLASSES, 0, reference_options("label_smoothing", {}, (0, 1)))
    assert result.verdict == "pass", result.message
    assert "variant" in result.message


def test_unknown_key_is_skipped() -> None:
    result = cross_check(F.cross_entropy, CLASSES, 0, {"key": "nope"})
    assert result.verdict == "skip"
    assert "nope" in result.message


def test_sandbox_accepts_correct_distillation(sandbox: Sandbox) -> None:
    task = "knowledge distillation loss with temperature 4"
    check = _validate(sandbox, KD_CORRECT, task, DISTILL)
    assert check.verdict == "pass", check.message


def test_sandbox_rejects_missing_temperature_square(sandbox: Sandbox) -> None:
    task = "knowledge distillation loss with temperature 4"
    check = _validate(sandbox, KD_NO_SQUARE, task, DISTILL)
    assert check.verdict == "fail"
    assert "ratio 0.0625" in check.message


def test_sandbox_uses_stated_temperature(sandbox: Sandbox) -> None:
    task = "knowledge distillation loss with temperature 2"
    check = _validate(sandbox, KD_CORRECT, task, DISTILL)
    assert check.verdict == "fail"
    assert check.evidence["params"] == {"temperature": 2.0}


def test_dice_over_whole_batch_is_accepted() -> None:
    spec = parse_spec("logits:float[N,1,H,W] masks:float[N,1,H,W]~binary")

    def pooled(logits, masks):
        probs = torch.sigmoid(logits)
        overlap = (probs * masks).sum()
        return 1 - (2 * overlap + 1) / (probs.sum() + masks.sum() + 1)

    result = cross_check(pooled, spec, 0, reference_options("dice", {}, (0, 1)))
    assert result.verdict == "pass", result.message
