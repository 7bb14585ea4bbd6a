"""Semantic probes: evidence that a loss is a usable training signal, whatever the task.

``better_is_lower`` compares the loss at target-consistent inputs (logits peaked on the
true class, predictions equal to targets, matching embeddings equal, a VAE posterior at
the prior) with the loss at random predictions over the same targets. For per-sample
regression it also requires the target to be a local minimum. ``trainable`` (in
``lossmagic.checks.trainability``) fits a small linear model with the loss, on a
synthetic problem of the family that the spec implies, and requires that family's
metric to end clearly beyond chance. Both
read the relations from ``lossmagic.checks.intent`` and skip, with the reason, when the
spec has none they can use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import LossFunction, describe_exception, loss_value
from lossmagic.checks.intent import (
    Intent,
    Relation,
    infer_intent,
    is_distance,
    is_log_probability,
)
from lossmagic.checks.trainability import probe_trainable
from lossmagic.spec import InputItem, InputSpec, make_trial

__all__ = ["probe_better_is_lower", "probe_trainable", "run_probes"]

logger = logging.getLogger(__name__)

_BETTER_BATCH = 16
_BETTER_SEEDS = 4
_NEAR_STEP = 0.1
"""Size of the random step off the target in the local-minimum test."""
Trial = dict[str, torch.Tensor]


def run_probes(
    fn: LossFunction, spec: InputSpec, seed: int = 0, task: str = ""
) -> Iterator[CheckResult]:
    """Run both probes, each timed; ``task`` refines the family read from the spec."""
    intent = infer_intent(spec, task)
    probes: list[tuple[str, Callable[[], CheckResult]]] = [
        ("better_is_lower", lambda: probe_better_is_lower(fn, spec, intent, seed)),
        ("trainable", lambda: probe_trainable(fn, spec, intent, seed)),
    ]
    for name, probe in probes:
        started = time.perf_counter()
        try:
            result = probe()
        except Exception as exc:  # noqa: BLE001 - candidate code may raise anything; it is evidence
            error = describe_exception(exc)
            message = f"{error['type']} during the probe: {error['message']}"
            result = CheckResult(name, "fail", message, {"error": error})
        result.seconds = time.perf_counter() - started
        yield result


def _items(spec: InputSpec) -> dict[str, InputItem]:
    return {item.name: item for item in spec.items}


def _sizes(spec: InputSpec, batch: int) -> dict[str, int]:
    sizes = dict(spec.trial_sizes()[0])
    if "N" in sizes:
        sizes["N"] = batch
    return sizes


def _value(fn: LossFunction, trial: Trial) -> float:
    return loss_value(fn(*trial.values()))


# Target-consistent inputs ------------------------------------------------------------


def _peaked(labels: torch.Tensor, class_dim: int, classes: int, domain: str | None) -> torch.Tensor:
    """Return inputs that put all weight on ``labels`` along ``class_dim``."""
    one_hot = F.one_hot(labels.long(), classes).to(torch.float32).movedim(-1, class_dim)
    if domain == "prob":
        return torch.softmax(one_hot * 8.0, dim=class_dim)
    if domain == "unit":
        return one_hot * 0.9 + 0.05
    return one_hot * 8.0


def _towards(
    target: torch.Tensor, item: InputItem, target_domain: str | None
) -> list[torch.Tensor]:
    """Return values of prediction ``item`` that agree with ``target``, most likely first.

    A prediction without a declared domain may be logits or probabilities, so both
    readings are offered and the probe keeps whichever the loss scores lower. A distance
    is small for a similar pair (label 1) and large otherwise.
    """
    if is_distance(item) and target_domain in ("binary", "sign"):
        similar = target if target_domain == "binary" else (target + 1) / 2
        return [(1 - similar) * 3.0]
    if target_domain == "binary":
        probabilities = target * 0.9 + 0.05
        if item.domain in ("unit", "prob"):
            return [probabilities]
        return [(target * 2 - 1) * 6.0, probabilities]
    if target_domain == "sign":
        return [target * 3.0, target]
    if target_domain == "prob":
        if item.domain == "prob":
            return [target]
        return [target.clamp_min(1e-6).log(), target]
    if target_domain == "unit" and item.domain is None:
        return [target, torch.logit(target.clamp(1e-4, 1 - 1e-4))]
    if target_domain == "positive" and "log" in item.name.lower():
        # A log-rate or log-scale prediction agrees with the log of a positive target.
        return [target.log()]
    return [target]


def _relation_options(relation: Relation, trial: Trial, items: dict[str, InputItem]) -> list[Trial]:
    """Return overrides of ``trial`` that make ``relation`` hold, most likely first."""
    names = relation.items
    if relation.kind == "labels":
        prediction, labels = items[names[0]], trial[names[1]]
        shape = trial[names[0]].shape
        if relation.class_dim is None:
            target = labels.to(torch.float32).reshape(shape)
            return [{prediction.name: v} for v in _towards(target, prediction, "binary")]
        classes = shape[relation.class_dim]
        return [{prediction.name: _peaked(labels, relation.class_dim, classes, prediction.domain)}]

    if relation.kind == "match":
        prediction, target_item = items[names[0]], items[names[1]]
        target = trial[names[1]].detach().reshape(trial[names[0]].shape)
        return [{prediction.name: v} for v in _towards(target, prediction, target_item.domain)]

    if relation.kind in ("signed_pair", "binary_pair"):
        first, label = trial[names[0]].detach(), trial[names[2]]
        sign = label.to(torch.float32)
        if relation.kind == "binary_pair":
            sign = sign * 2 - 1
        options = []
        # Which label value means "similar" is a convention; unless the spec's names or
        # the task settle it, binary labels try both.
        flips = [1.0]
        if relation.kind == "binary_pair":
            if relation.similar_label is None:
                flips = [1.0, -1.0]
            elif relation.similar_label == 0.0:
                flips = [-1.0]
        for flip in flips:
            side = (sign * flip).reshape(-1, *([1] * (first.dim() - 1)))
            if first.dim() == 1 and items[names[2]].domain == "unit":
                # The score difference whose sigmoid is the label's probability.
                half = torch.logit(label.clamp(1e-4, 1 - 1e-4)) * flip / 2
                options.append({names[0]: half, names[1]: -half})
            elif first.dim() == 1:
                options.append({names[0]: side * 3.0, names[1]: -side * 3.0})
            else:
                options.append({names[1]: side * first})
                options.append({names[0]: first * 3.0, names[1]: side * first * 3.0})
        return options

    if relation.kind == "ranked":
        higher, lower = trial[names[0]], trial[names[1]]
        return [{names[0]: torch.full_like(higher, 3.0), names[1]: torch.full_like(lower, -3.0)}]

    if relation.kind == "triplet":
        anchor = trial[names[0]].detach()
        return [{names[1]: anchor, names[2]: -anchor}, {names[1]: anchor, names[2]: -3 * anchor}]

    # A VAE posterior equal to the standard normal prior.
    return [{name: torch.zeros_like(trial[name]) for name in names}]


def _with_label_targets(intent: Intent, trial: Trial, items: dict[str, InputItem]) -> Trial:
    """Return ``trial`` with teacher logits that agree with the class labels."""
    trial = dict(trial)
    for relation in intent.relations:
        if relation.kind != "labels" or relation.class_dim is None:
            continue
        labels = trial[relation.items[1]]
        for name in relation.label_targets:
            classes = trial[name].shape[relation.class_dim]
            trial[name] = _peaked(labels, relation.class_dim, classes, items[name].domain) * 0.5
    return trial


def probe_better_is_lower(
    fn: LossFunction, spec: InputSpec, intent: Intent, seed: int = 0
) -> CheckResult:
    """Check that target-consistent predictions get a lower loss than random ones.

    Each relation is tested on its own, with the other inputs random, so that one term
    of a sum (the reconstruction of a VAE) cannot hide a sign error in another (its KL).
    """
    if not intent.relations:
        return CheckResult(
            "better_is_lower", "skip", f"no target-consistent inputs are known for {spec}"
        )

    items = _items(spec)
    sizes = _sizes(spec, _BETTER_BATCH)
    trials = [
        _with_label_targets(
            intent,
            {n: t.detach() for n, t in make_trial(spec, sizes, seed + 1000 + i).items()},
            items,
        )
        for i in range(_BETTER_SEEDS)
    ]
    random_values = [_value(fn, trial) for trial in trials]
    random_mean = sum(random_values) / len(random_values)
    evidence: dict[str, Any] = {"family": intent.family, "random": random_values}

    for relation in intent.relations:
        label = f"{relation.kind}({', '.join(relation.items)})"
        means = []
        for option in range(len(_relation_options(relation, trials[0], items))):
            values = [
                _value(fn, {**trial, **_relation_options(relation, trial, items)[option]})
                for trial in trials
            ]
            means.append(sum(values) / len(values))
        consistent_mean = min(means)

        # A prediction of shape (N, 1) scored against targets (N,) must reach the loss's
        # minimum, far below random; a broadcast (N, N) difference does not.
        gap = random_mean - consistent_mean
        needed = 0.5 * abs(random_mean) if relation.squeeze else 1e-3 * abs(random_mean) + 1e-6
        evidence[label] = {"consistent": consistent_mean, "gap": gap, "needed_gap": needed}
        if gap < needed:
            message = (
                f"inputs consistent with {label} score {consistent_mean:.4g}, not clearly "
                f"lower than random ones at {random_mean:.4g}; check the sign and the "
                "broadcasting"
            )
            return CheckResult("better_is_lower", "fail", message, evidence)

        if _has_minimum_at_target(relation, items, intent):
            lower = _lower_near_target(fn, relation, trials, items)
            if lower is not None:
                evidence[label]["near_target"] = lower
                message = (
                    f"moving {relation.items[0]} off its target lowers the loss from "
                    f"{lower[0]:.6g} to {lower[1]:.6g}, so the loss has no minimum where "
                    "the prediction equals the target; check the signs of its terms"
                )
                return CheckResult("better_is_lower", "fail", message, evidence)

    message = f"every relation scores below random ({random_mean:.4g})"
    return CheckResult("better_is_lower", "pass", message, evidence)


def _has_minimum_at_target(relation: Relation, items: dict[str, InputItem], intent: Intent) -> bool:
    """Return whether a prediction equal to its target must be a minimum of the loss.

    That holds for per-sample regression and soft-label matches. Embedding matches
    are excluded, because InfoNCE at equal pairs still gains from moving the pairs
    apart from each other.
    """
    if relation.kind != "match" or not intent.per_sample:
        return False
    return items[relation.items[1]].domain in (None, "prob")


def _lower_near_target(
    fn: LossFunction, relation: Relation, trials: list[Trial], items: dict[str, InputItem]
) -> tuple[float, float] | None:
    """Return (value at the target, lower value nearby) if a small step lowers the loss."""
    name = relation.items[0]
    generator = torch.Generator().manual_seed(7)
    for trial in trials[:2]:
        at_target = {**trial, **_relation_options(relation, trial, items)[0]}
        value = _value(fn, at_target)
        step = torch.randn(at_target[name].shape, generator=generator) * _NEAR_STEP
        for direction in (1.0, -1.0):
            moved = at_target[name] + direction * step
            if is_log_probability(items[name]):
                # Log-probabilities stay normalized, or a loss such as kl_div has no minimum.
                moved = torch.log_softmax(moved, dim=-1)
            nearby = _value(fn, {**at_target, name: moved})
            if nearby < value - 1e-5 * abs(value) - 1e-6:
                return value, nearby
    return None
