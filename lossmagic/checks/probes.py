"""Semantic probes: evidence that a loss is a usable training signal, whatever the task.

``better_is_lower`` compares the loss at target-consistent inputs (logits peaked on the
true class, predictions equal to targets, matching embeddings equal, a VAE posterior at
the prior) with the loss at random predictions over the same targets. ``trainable``
fits a small linear model with the loss, on a synthetic problem of the family that the
spec implies, and requires that family's metric to end clearly beyond chance. Both
read the relations from ``lossmagic.checks.intent`` and skip, with the reason, when the
spec has none they can use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import LossFunction, describe_exception, loss_value
from lossmagic.checks.intent import Intent, Relation, infer_intent
from lossmagic.spec import InputItem, InputSpec, make_trial

__all__ = ["probe_better_is_lower", "probe_trainable", "run_probes"]

logger = logging.getLogger(__name__)

_BETTER_BATCH = 16
_BETTER_SEEDS = 4
_NEAR_STEP = 0.1
"""Size of the random step off the target in the local-minimum test."""
_TRAIN_BATCH = 64
_TRAIN_STEPS = 80
_TRAIN_LR = 0.05
_FEATURES = 8
_CURVE_EVERY = 10

# Metric levels that a trained linear model must reach on its synthetic problem. The
# correct losses in tests/loss_samples.py reach about 0.95 or more on each, and a sign
# error drives them below chance.
_MIN_AUC = 0.8
_MIN_CORRELATION = 0.7
_MIN_ACCURACY_GAIN = 0.5
"""Fraction of the distance from chance accuracy to 1 that training must cover."""

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
    if _is_distance(item) and target_domain in ("binary", "sign"):
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


def _is_distance(item: InputItem) -> bool:
    words = set(item.name.lower().split("_"))
    return bool(words & {"dist", "dists", "distance", "distances", "dissimilarity"})


def _is_log_probability(item: InputItem) -> bool:
    name = item.name.lower().replace("_", "")
    return "logprob" in name or name == "logp" or "logsoftmax" in name


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
            nearby = _value(fn, {**at_target, name: at_target[name] + direction * step})
            if nearby < value - 1e-5 * abs(value) - 1e-6:
                return value, nearby
    return None


# Trainability ------------------------------------------------------------------------


@dataclass
class _Problem:
    """A synthetic problem: features, fixed inputs, and how to score a prediction."""

    prediction: InputItem
    features: torch.Tensor
    """Per-element features; the model maps their last dimension to a prediction."""
    outputs: int
    """Model outputs per element: classes, or 1."""
    class_dim: int | None
    inputs: Trial
    metric: str
    score: Callable[[torch.Tensor], float]
    threshold: float
    positive: bool = False
    """Whether the model outputs exp(raw), for a prediction that must be positive."""


def _auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    scores, positive = scores.detach().flatten().double(), positive.flatten().bool()
    count_pos, count_neg = int(positive.sum()), int((~positive).sum())
    if count_pos == 0 or count_neg == 0:
        return 0.5
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    return float(
        (ranks[positive].sum() - count_pos * (count_pos + 1) / 2) / (count_pos * count_neg)
    )


def _accuracy(prediction: torch.Tensor, labels: torch.Tensor, class_dim: int) -> float:
    return float((prediction.argmax(class_dim) == labels).double().mean())


def _log_correlation(prediction: torch.Tensor, target: torch.Tensor) -> float:
    log_prediction = prediction.detach().double().clamp_min(1e-12).log()
    a, b = log_prediction.flatten(), target.detach().double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


def _correlation(prediction: torch.Tensor, item: InputItem, target: torch.Tensor) -> float:
    """Return the correlation of ``prediction``, on the truth's scale, with ``target``."""
    a, b = _logits(prediction, item).detach().double(), target.detach().double()
    if a.dim() >= 2 and a.shape[-1] > 1:
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


def _problem(intent: Intent, spec: InputSpec, seed: int) -> _Problem | None:
    """Build a synthetic problem for the first relation that has one."""
    items = _items(spec)
    sizes = _sizes(spec, _TRAIN_BATCH)
    generator = torch.Generator().manual_seed(seed + 2000)
    inputs = {n: t.detach() for n, t in make_trial(spec, sizes, seed + 2000).items()}

    for relation in intent.relations:
        prediction = items[relation.items[0]]
        shape = inputs[prediction.name].shape

        if relation.kind == "labels" and relation.class_dim is not None:
            labels_name = relation.items[1]
            classes = shape[relation.class_dim]
            features = torch.randn((*inputs[labels_name].shape, _FEATURES), generator=generator)
            truth = features @ (torch.randn(_FEATURES, classes, generator=generator) * 2)
            labels = truth.argmax(-1).to(inputs[labels_name].dtype)
            inputs[labels_name] = labels
            for name in relation.label_targets:
                inputs[name] = truth.movedim(-1, relation.class_dim)
            chance = float(torch.bincount(labels.flatten().long()).max()) / labels.numel()
            class_dim = relation.class_dim
            return _Problem(
                prediction,
                features,
                classes,
                class_dim,
                inputs,
                "accuracy",
                partial(_accuracy, labels=labels, class_dim=class_dim),
                chance + _MIN_ACCURACY_GAIN * (1 - chance),
            )

        if relation.kind in ("labels", "match"):
            target_name = relation.items[1]
            domain = "binary" if relation.kind == "labels" else items[target_name].domain
            features = torch.randn((*shape, _FEATURES), generator=generator)
            truth = features @ torch.randn(_FEATURES, generator=generator)
            target = {
                "binary": (truth > 0).float(),
                "sign": torch.sign(truth),
                "prob": torch.softmax(truth, dim=-1) if truth.dim() else truth,
                "unit": torch.sigmoid(truth),
                "positive": torch.exp(truth),
            }.get(domain or "", truth)
            inputs[target_name] = target.reshape(inputs[target_name].shape).to(
                inputs[target_name].dtype
            )
            if domain in ("binary", "sign"):
                positive = truth > 0 if not _is_distance(prediction) else truth <= 0
                return _Problem(
                    prediction,
                    features,
                    1,
                    None,
                    inputs,
                    "auc",
                    partial(_auc, positive=positive),
                    _MIN_AUC,
                )
            if domain == "positive" and "log" not in prediction.name.lower():
                # A rate or scale predicted directly: the model outputs exp(raw).
                return _Problem(
                    prediction,
                    features,
                    1,
                    None,
                    inputs,
                    "correlation",
                    partial(_log_correlation, target=truth),
                    _MIN_CORRELATION,
                    positive=True,
                )
            reference = truth if domain in ("prob", "unit", "positive") else target
            return _Problem(
                prediction,
                features,
                1,
                None,
                inputs,
                "correlation",
                partial(_correlation, item=prediction, target=reference),
                _MIN_CORRELATION,
            )
    return None


def _logits(prediction: torch.Tensor, item: InputItem) -> torch.Tensor:
    """Return ``prediction`` on the scale of the synthetic truth (log-odds or log-probs)."""
    if item.domain == "prob":
        return prediction.clamp_min(1e-6).log()
    if item.domain == "unit":
        return torch.logit(prediction.clamp(1e-4, 1 - 1e-4))
    return prediction


def _predict(problem: _Problem, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    raw = problem.features @ weight + bias
    if problem.class_dim is not None:
        raw = raw.movedim(-1, problem.class_dim)
        if problem.prediction.domain == "prob":
            return torch.softmax(raw, dim=problem.class_dim)
        if _is_log_probability(problem.prediction):
            return torch.log_softmax(raw, dim=problem.class_dim)
        return raw
    raw = raw.squeeze(-1)
    if problem.positive:
        return torch.exp(raw.clamp(max=20.0))
    if problem.prediction.domain == "unit":
        return torch.sigmoid(raw)
    if problem.prediction.domain == "prob":
        return torch.softmax(raw, dim=-1)
    return raw


class _Adam:
    """A minimal Adam update.

    ``torch.optim`` is avoided because its first use imports the compiler stack, which
    takes seconds in every fresh sandbox process.
    """

    def __init__(self, parameters: list[torch.Tensor], lr: float) -> None:
        self.parameters = parameters
        self.lr = lr
        self.steps = 0
        self.first = [torch.zeros_like(p) for p in parameters]
        self.second = [torch.zeros_like(p) for p in parameters]

    @torch.no_grad()
    def step(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.steps += 1
        for parameter, first, second in zip(self.parameters, self.first, self.second, strict=True):
            if parameter.grad is None:
                continue
            first.mul_(beta1).add_(parameter.grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(parameter.grad, parameter.grad, value=1 - beta2)
            first_hat = first / (1 - beta1**self.steps)
            second_hat = second / (1 - beta2**self.steps)
            parameter.sub_(self.lr * first_hat / (second_hat.sqrt() + eps))
            parameter.grad = None


def probe_trainable(
    fn: LossFunction, spec: InputSpec, intent: Intent, seed: int = 0
) -> CheckResult:
    """Train a linear model with the loss and check that its metric ends beyond chance."""
    problem = _problem(intent, spec, seed)
    if problem is None:
        return CheckResult(
            "trainable", "skip", f"no synthetic training problem is known for {spec}"
        )

    generator = torch.Generator().manual_seed(seed + 3000)
    weight = (torch.randn(_FEATURES, problem.outputs, generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(problem.outputs, requires_grad=True)
    optimizer = _Adam([weight, bias], _TRAIN_LR)
    names = list(problem.inputs)
    curve: list[dict[str, float]] = []

    for step in range(_TRAIN_STEPS + 1):
        prediction = _predict(problem, weight, bias)
        inputs = {**problem.inputs, problem.prediction.name: prediction}
        output = fn(*(inputs[name] for name in names))
        value = loss_value(output)
        if step % _CURVE_EVERY == 0:
            curve.append({"step": step, "loss": value, problem.metric: problem.score(prediction)})
        if step == _TRAIN_STEPS:
            break
        if not torch.isfinite(torch.tensor(value)):
            message = f"the loss became {value} at step {step} of training"
            return CheckResult("trainable", "fail", message, {"curve": curve})
        output.mean().backward()
        optimizer.step()

    start, end = curve[0][problem.metric], curve[-1][problem.metric]
    evidence = {
        "family": intent.family,
        "metric": problem.metric,
        "threshold": problem.threshold,
        "curve": curve,
    }
    if end < problem.threshold:
        message = (
            f"a model trained {_TRAIN_STEPS} steps with the loss reaches {problem.metric} "
            f"{end:.3f} (from {start:.3f}), below {problem.threshold:.3f}: the loss does not "
            "pull predictions towards the targets"
        )
        return CheckResult("trainable", "fail", message, evidence)
    message = f"{problem.metric} {start:.3f} -> {end:.3f} in {_TRAIN_STEPS} steps"
    return CheckResult("trainable", "pass", message, evidence)
