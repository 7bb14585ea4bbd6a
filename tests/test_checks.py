"""Contract checks and probes on correct standard losses and on realistic bugs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import CANDIDATE_FILENAME
from lossmagic.checks.intent import infer_intent, reduction_from_task
from lossmagic.checks.runner import run_candidate_checks
from lossmagic.errors import ErrorClass, classify
from lossmagic.exceptions import InputSpecError
from lossmagic.spec import parse_spec, spec_from_namespace, spec_from_tensors
from tests.loss_samples import BUGGY, CORRECT, HEADER


def load(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(HEADER + source, CANDIDATE_FILENAME, "exec"), namespace)
    return namespace["loss_fn"]


def run_checks(source: str, spec: str, task: str) -> list[CheckResult]:
    return list(run_candidate_checks(load(source), parse_spec(spec), 0, {"task": task}))


@pytest.mark.parametrize(("key", "spec", "task", "source"), CORRECT, ids=[c[0] for c in CORRECT])
def test_correct_loss_passes(key: str, spec: str, task: str, source: str) -> None:
    results = run_checks(source, spec, task)
    failed = [f"{r.name}: {r.message}" for r in results if r.failed]
    assert failed == []
    names = {r.name for r in results}
    assert {"finite", "gradients", "reduction", "better_is_lower", "trainable"} <= names


# The check that must catch each bug; another check failing first would hide a regression.
EXPECTED_FAILURE = {
    "bpr_sign": "better_is_lower",
    "distill_softmax_dim0": "reduction",
    "mse_squeeze_broadcast": "better_is_lower",
    "log_cosh_sign": "better_is_lower",
    "poisson_sign": "trainable",
    "ce_sum": "reduction",
    "ce_sign": "better_is_lower",
    "ce_softmax_dim0": "reduction",
    "ce_log_softmax_probs": "gradients",
    "mse_broadcast": "better_is_lower",
    "mse_detached": "gradients",
    "mse_not_scalar": "scalar",
    "bce_no_clamp": "finite",
    "dice_no_smooth": "finite",
    "triplet_swapped": "better_is_lower",
    "inplace": "no_in_place",
    "hinge_sign": "better_is_lower",
    "random_noise": "deterministic",
    "distill_sum": "reduction",
    "vae_kl_sign": "better_is_lower",
    "cosine_no_eps": "finite",
}


@pytest.mark.parametrize(("key", "bug", "spec", "task", "source"), BUGGY, ids=[b[0] for b in BUGGY])
def test_buggy_loss_fails(key: str, bug: str, spec: str, task: str, source: str) -> None:
    results = run_checks(source, spec, task)
    failed = [r.name for r in results if r.failed and r.authoritative]
    assert failed[:1] == [EXPECTED_FAILURE[key]]


def test_sum_reduction_needs_the_task() -> None:
    source = "\ndef loss_fn(pred, target):\n    return ((pred - target) ** 2).sum()\n"
    spec = "pred:float[N,1] target:float[N,1]"
    summed = run_checks(source, spec, "squared error summed over the batch")
    assert not any(r.failed for r in summed)
    failed = [r for r in run_checks(source, spec, "mean squared error") if r.failed]
    assert [r.name for r in failed] == ["reduction"]
    assert failed[0].evidence["value_doubled_batch"] == pytest.approx(
        2 * failed[0].evidence["value"], rel=1e-4
    )


def test_mean_fails_when_task_asks_for_sum() -> None:
    source = "\ndef loss_fn(pred, target):\n    return ((pred - target) ** 2).mean()\n"
    results = run_checks(source, "pred:float[N,1] target:float[N,1]", "reduction='sum'")
    assert [r.name for r in results if r.failed] == ["reduction"]


def test_no_reduction_requires_per_sample_output() -> None:
    source = "\ndef loss_fn(logits, targets):\n    return F.cross_entropy(logits, targets)\n"
    results = run_checks(source, "logits:float[N,C] targets:long[N]<C", "no reduction")
    assert [r.name for r in results if r.failed] == ["scalar"]


def test_failures_map_to_error_classes() -> None:
    cases = {
        "ce_sum": ErrorClass.REDUCTION,
        "ce_sign": ErrorClass.PROBE,
        "inplace": ErrorClass.IN_PLACE,
        "bce_no_clamp": ErrorClass.NAN_INF,
        "mse_detached": ErrorClass.GRADIENT,
    }
    samples = {b[0]: b for b in BUGGY}
    for key, error_class in cases.items():
        _, _, spec, task, source = samples[key]
        info = classify(run_checks(source, spec, task))
        assert info is not None
        assert info.error_class is error_class, key


def test_in_place_on_float_input_is_named() -> None:
    source = (
        "\ndef loss_fn(pred, target):\n"
        "    pred.clamp_(0, 1)\n"
        "    return (pred - target).abs().mean()\n"
    )
    results = run_checks(source, "pred:float[N] target:float[N]", "l1")
    assert [r.name for r in results if r.failed] == ["no_in_place"]


def test_slow_loss_fails_time_budget() -> None:
    source = (
        "\nimport time\n\ndef loss_fn(pred, target):\n"
        "    time.sleep(0.02)\n    return (pred - target).abs().mean()\n"
    )
    function = load(source)
    options = {"time_budget": 0.01, "probes": False}
    spec = parse_spec("pred:float[N] target:float[N]")
    results = list(run_candidate_checks(function, spec, 0, options))
    timing = next(r for r in results if r.name == "time")
    assert timing.failed
    assert timing.evidence["seconds_per_call"] > 0.01


def test_trainable_keeps_the_curve() -> None:
    _, spec, task, source = next(c for c in CORRECT if c[0] == "focal")
    trainable = next(r for r in run_checks(source, spec, task) if r.name == "trainable")
    curve = trainable.evidence["curve"]
    assert len(curve) >= 5
    assert curve[-1]["accuracy"] > curve[0]["accuracy"]


def test_non_learning_loss_fails_trainable() -> None:
    # The prediction enters only through its mean, so no class can be learned.
    source = (
        "\ndef loss_fn(logits, targets):\n"
        "    return (logits.mean() - 10.0) ** 2 + 0 * targets.sum()\n"
    )
    results = run_checks(source, "logits:float[N,C] targets:long[N]<C", "cross-entropy")
    failed = [r.name for r in results if r.failed]
    assert failed[0] in ("better_is_lower", "trainable")


def test_probes_off_by_option() -> None:
    function = load("\ndef loss_fn(a, b):\n    return F.mse_loss(a, b)\n")
    spec = parse_spec("a:float[N] b:float[N]")
    results = list(run_candidate_checks(function, spec, 0, {"probes": False}))
    assert not {"better_is_lower", "trainable"} & {r.name for r in results}


@pytest.mark.parametrize(
    ("spec", "family", "per_sample"),
    [
        ("logits:float[N,C] targets:long[N]<C", "classification", True),
        ("pred:float[N,1,H,W] mask:float[N,1,H,W]~binary", "binary", False),
        ("pred:float[N,1] target:float[N]", "regression", True),
        ("z1:float[N,D] z2:float[N,D]", "regression", False),
        ("anchor:float[N,D] positive:float[N,D] negative:float[N,D]", "triplet", False),
        ("x1:float[N] x2:float[N] y:float[N]~sign", "embedding", False),
        ("recon:float[N,D] x:float[N,D] mu:float[N,Z] logvar:float[N,Z]", "vae", False),
        ("logits:float[N,4] targets:long[N]<5", "unknown", False),
        ("mean:float[N] var:float[N]~positive target:float[N]", "regression", True),
        ("pred:float[N,D] target:float[N,D] weight:float[N,D]", "regression", False),
    ],
)
def test_intent_family(spec: str, family: str, per_sample: bool) -> None:
    intent = infer_intent(parse_spec(spec))
    assert intent.family == family
    assert intent.per_sample is per_sample


def test_distillation_teacher_follows_labels() -> None:
    intent = infer_intent(parse_spec("s:float[N,C] t:float[N,C] y:long[N]<C"))
    assert intent.relations[0].kind == "labels"
    assert intent.relations[0].label_targets == ("t",)


@pytest.mark.parametrize(
    ("task", "reduction"),
    [
        ("mean squared error", "mean"),
        ("cross entropy with no reduction", "none"),
        ("per-sample losses", "none"),
        ("the average of per-sample losses", "mean"),
        ("per-pixel loss values, then averaged", "mean"),
        ("MSE with reduction='sum'", "sum"),
        ("squared error summed over the batch", "sum"),
        ("summed over classes and averaged over the batch", "mean"),
        ("KL between probabilities that sum to 1", "mean"),
    ],
)
def test_reduction_from_task(task: str, reduction: str) -> None:
    assert reduction_from_task(task) == reduction


def test_spec_from_tensors_reads_shapes_and_domains() -> None:
    spec = spec_from_tensors(
        {
            "outputs": torch.randn(32, 10),
            "labels": torch.randint(0, 10, (32,)),
            "mask": torch.randint(0, 2, (32, 1, 128, 128)).float(),
            "probs": torch.rand(32, 10).softmax(-1),
        }
    )
    assert str(spec) == (
        "outputs:float[N,10] labels:long[N]<10 mask:float[N,1,H,H]~binary probs:float[N,10]~prob"
    )
    assert spec.device == "cpu"
    assert parse_spec(str(spec)) == spec


def test_spec_from_namespace_errors() -> None:
    namespace = {"x": torch.zeros(3), "n": 3}
    assert spec_from_namespace("x:float[N]", namespace) is None
    assert str(spec_from_namespace("x", namespace)) == "x:float[3]~binary"
    with pytest.raises(InputSpecError, match="no variable"):
        spec_from_namespace("x, y", namespace)
    with pytest.raises(InputSpecError, match=r"not a torch\.Tensor"):
        spec_from_namespace("x n", namespace)


@pytest.mark.parametrize(
    "key",
    ["triplet", "contrastive", "cosine_embedding", "margin_ranking", "bpr", "gan_discriminator"],
)
def test_pair_families_are_trained(key: str) -> None:
    _, spec, task, source = next(c for c in CORRECT if c[0] == key)
    trainable = next(r for r in run_checks(source, spec, task) if r.name == "trainable")
    assert trainable.verdict == "pass"
    assert trainable.evidence["curve"][-1]["loss"] < trainable.evidence["curve"][0]["loss"]


def test_triplet_sign_error_fails_training() -> None:
    source = (
        "\ndef loss_fn(anchor, positive, negative):\n"
        "    d_pos = F.pairwise_distance(anchor, positive)\n"
        "    d_neg = F.pairwise_distance(anchor, negative)\n"
        "    return F.relu(d_neg - d_pos + 1.0).mean()\n"
    )
    spec = "anchor:float[N,D] positive:float[N,D] negative:float[N,D]"
    trainable = next(r for r in run_checks(source, spec, "triplet") if r.name == "trainable")
    assert trainable.failed
    assert trainable.evidence["metric"] == "triplet accuracy"


def test_teacher_first_may_be_detached() -> None:
    source = (
        "\ndef loss_fn(teacher_logits, student_logits, T=2.0):\n"
        "    q = F.softmax(teacher_logits.detach() / T, dim=-1)\n"
        "    log_p = F.log_softmax(student_logits / T, dim=-1)\n"
        '    return F.kl_div(log_p, q, reduction="batchmean") * T * T\n'
    )
    spec = "teacher_logits:float[N,C] student_logits:float[N,C]"
    results = run_checks(source, spec, "distillation")
    assert [r.name for r in results if r.failed] == []


def test_hard_example_mining_may_depend_on_batch() -> None:
    source = (
        "\ndef loss_fn(logits, targets):\n"
        '    losses = F.cross_entropy(logits, targets, reduction="none")\n'
        "    return losses.topk(min(2, losses.numel())).values.mean()\n"
    )
    spec = "logits:float[N,C] targets:long[N]<C"
    assert "reduction" in [r.name for r in run_checks(source, spec, "cross-entropy") if r.failed]
    task = "cross-entropy with OHEM over the 2 hardest samples"
    assert [r.name for r in run_checks(source, spec, task) if r.failed] == []


def test_variance_is_not_taken_for_target() -> None:
    intent = infer_intent(parse_spec("mean:float[N] var:float[N]~positive target:float[N]"))
    assert [r.items for r in intent.relations] == [("mean", "target")]
