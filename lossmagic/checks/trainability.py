"""The trainability probe: a small model trained with the loss must learn its problem.

The probe builds a synthetic problem of the family that the spec implies, with inputs of
the spec's shapes. Class labels come from linear classes, regression and binary targets
from a linear signal, embeddings from clusters hidden under nuisance dimensions, and
rankings from hidden scores. A linear model (one weight matrix shared by every input it produces) is
trained for a fixed number of Adam steps with the loss, and the family's metric must
end clearly beyond chance. The curve of loss and metric is kept as evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from lossmagic.checks.base import CheckResult
from lossmagic.checks.contract import LossFunction, loss_value
from lossmagic.checks.intent import Intent, Relation, is_distance, is_log_probability
from lossmagic.spec import InputItem, InputSpec, make_trial

__all__ = ["probe_trainable"]

logger = logging.getLogger(__name__)

_TRAIN_BATCH = 64
_TRAIN_STEPS = 80
_TRAIN_LR = 0.05
_FEATURES = 8
_CURVE_EVERY = 10
_CLUSTERS = 4

# Metric levels that a trained linear model must reach on its synthetic problem. The
# correct losses in tests/loss_samples.py reach about 0.95 or more on each, and a sign
# error drives them below chance.
_MIN_AUC = 0.8
_MIN_CORRELATION = 0.7
_MIN_ACCURACY_GAIN = 0.5
"""Fraction of the distance from chance accuracy to 1 that training must cover."""
_MIN_PAIR_ACCURACY = 0.75
_MAX_GAP_FRACTION = 0.5
"""Fraction of its starting value that the gap between sorted predictions and sorted
targets must fall to for a distribution-matching loss to count as trained."""

Trial = dict[str, torch.Tensor]
Predictions = dict[str, torch.Tensor]


@dataclass
class _Problem:
    """A synthetic problem: the model's features, fixed inputs, and a metric."""

    features: dict[str, torch.Tensor]
    """Per predicted input, per-element features; the model maps the last dimension."""
    items: dict[str, InputItem]
    outputs: int
    """Model outputs per element: classes, embedding size, or 1 (squeezed)."""
    inputs: Trial
    metric: str
    score: Callable[[Predictions], float]
    threshold: float
    class_dim: int | None = None
    positive: bool = False
    """Whether the model outputs exp(raw), for a prediction that must be positive."""
    chance: float = field(default=0.5)
    distribution: Callable[[Predictions], float] | None = None
    """For regression only: the gap between the prediction's and the target's values.

    Distribution-matching losses (MMD, CORAL, sample Wasserstein) cannot learn which
    prediction belongs to which target, so closing this gap also passes.
    """


# Metrics -------------------------------------------------------------------------------


def _auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    scores, positive = scores.detach().flatten().double(), positive.flatten().bool()
    count_pos, count_neg = int(positive.sum()), int((~positive).sum())
    if count_pos == 0 or count_neg == 0:
        return 0.5
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    rank_sum = ranks[positive].sum() - count_pos * (count_pos + 1) / 2
    return float(rank_sum / (count_pos * count_neg))


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


def _logits(prediction: torch.Tensor, item: InputItem) -> torch.Tensor:
    """Return ``prediction`` on the scale of the synthetic truth (log-odds or log-probs)."""
    if item.domain == "prob":
        return prediction.clamp_min(1e-6).log()
    if item.domain == "unit":
        return torch.logit(prediction.clamp(1e-4, 1 - 1e-4))
    return prediction


def _accuracy(predicted: Predictions, name: str, labels: torch.Tensor, class_dim: int) -> float:
    return float((predicted[name].argmax(class_dim) == labels).double().mean())


def _binary_auc(predicted: Predictions, name: str, positive: torch.Tensor) -> float:
    return _auc(predicted[name], positive)


def _correlation(predicted: Predictions, name: str, item: InputItem, target: torch.Tensor) -> float:
    """Return the correlation of a prediction, on the truth's scale, with ``target``."""
    a, b = _logits(predicted[name], item).detach().double(), target.detach().double()
    if a.dim() >= 2 and a.shape[-1] > 1:
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return _pearson(a, b)


def _distribution_gap(predicted: Predictions, name: str, target: torch.Tensor) -> float:
    """Return the mean gap between sorted predicted and target values, in target stds."""
    values = predicted[name].detach().double().flatten().sort().values
    wanted = target.detach().double().flatten().sort().values
    return float((values - wanted).abs().mean() / (wanted.std() + 1e-12))


def _log_correlation(predicted: Predictions, name: str, target: torch.Tensor) -> float:
    log_prediction = predicted[name].detach().double().clamp_min(1e-12).log()
    return _pearson(log_prediction, target.detach().double())


def _triplet_accuracy(predicted: Predictions, names: tuple[str, ...]) -> float:
    anchor, positive, negative = (predicted[n].detach() for n in names)
    closer = (anchor - positive).norm(dim=-1) < (anchor - negative).norm(dim=-1)
    return float(closer.double().mean())


def _pair_auc(predicted: Predictions, names: tuple[str, str], same: torch.Tensor) -> float:
    """Return the AUC of distance or cosine similarity for separating same-class pairs."""
    first, second = (predicted[n].detach() for n in names)
    by_distance = _auc(-(first - second).norm(dim=-1), same)
    by_cosine = _auc(torch.cosine_similarity(first, second, dim=-1), same)
    return max(by_distance, by_cosine)


def _order_accuracy(
    predicted: Predictions, names: tuple[str, str], first_higher: torch.Tensor
) -> float:
    first, second = (predicted[n].detach() for n in names)
    return float(((_as_pairs(first, second) > second) == first_higher).double().mean())


# Problems --------------------------------------------------------------------------------


def _clustered(classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return features whose first two dimensions show the class under large nuisance."""
    angles = classes.double() * (2 * torch.pi / _CLUSTERS)
    signal = torch.stack([angles.cos(), angles.sin()], dim=-1) * 2.0
    signal = signal + 0.3 * torch.randn(signal.shape, generator=generator, dtype=torch.float64)
    nuisance = 2.0 * torch.randn(
        (*classes.shape, _FEATURES - 2), generator=generator, dtype=torch.float64
    )
    return torch.cat([signal, nuisance], dim=-1).float()


def _pair_problem(
    relation: Relation, items: dict[str, InputItem], inputs: Trial, generator: torch.Generator
) -> _Problem | None:
    """Build a problem for triplets, labelled pairs and rankings, or return None."""
    names = relation.items
    first = inputs[names[0]]
    batch = first.shape[0]
    outputs = first.shape[-1] if first.dim() == 2 else 1
    if first.dim() > 2:
        return None

    if relation.kind == "triplet" and first.dim() == 2:
        anchor_class = torch.randint(0, _CLUSTERS, (batch,), generator=generator)
        shift = torch.randint(1, _CLUSTERS, (batch,), generator=generator)
        classes = (anchor_class, anchor_class, (anchor_class + shift) % _CLUSTERS)
        features = {n: _clustered(c, generator) for n, c in zip(names, classes, strict=True)}
        score = partial(_triplet_accuracy, names=names)
        return _Problem(features, items, outputs, inputs, "triplet accuracy", score, _MIN_AUC)

    if relation.kind in ("signed_pair", "binary_pair") and first.dim() == 2:
        similar = relation.similar_label if relation.kind == "binary_pair" else 1.0
        if similar is None or items[names[2]].domain == "unit":
            return None
        first_class = torch.randint(0, _CLUSTERS, (batch,), generator=generator)
        same = torch.rand(batch, generator=generator) < 0.5
        shift = torch.randint(1, _CLUSTERS, (batch,), generator=generator)
        second_class = torch.where(same, first_class, (first_class + shift) % _CLUSTERS)
        features = {
            names[0]: _clustered(first_class, generator),
            names[1]: _clustered(second_class, generator),
        }
        if relation.kind == "signed_pair":
            label = same.float() * 2 - 1
        else:
            label = same.float() if similar == 1.0 else 1 - same.float()
        inputs[names[2]] = label.to(inputs[names[2]].dtype)
        score = partial(_pair_auc, names=(names[0], names[1]), same=same)
        return _Problem(features, items, outputs, inputs, "pair auc", score, _MIN_AUC)

    if relation.kind in ("signed_pair", "binary_pair", "ranked") and outputs == 1:
        second = inputs[names[1]]
        direction = torch.randn(_FEATURES, generator=generator)
        features = {
            names[0]: torch.randn((*first.shape, _FEATURES), generator=generator),
            names[1]: torch.randn((*second.shape, _FEATURES), generator=generator),
        }
        if relation.kind == "ranked":
            # Shift the higher-ranked input's features along the hidden scoring direction.
            features[names[0]] = features[names[0]] + 2.5 * direction / direction.norm()
            first_higher = torch.ones_like(_as_pairs(first, second) - second, dtype=torch.bool)
        else:
            true_first = _as_pairs(features[names[0]] @ direction, second)
            difference = true_first - features[names[1]] @ direction
            first_higher = difference > 0
            if items[names[2]].domain == "sign":
                inputs[names[2]] = first_higher.float() * 2 - 1
            elif items[names[2]].domain == "unit":
                inputs[names[2]] = torch.sigmoid(difference)
            else:
                return None
        score = partial(_order_accuracy, names=(names[0], names[1]), first_higher=first_higher)
        return _Problem(features, items, 1, inputs, "order accuracy", score, _MIN_PAIR_ACCURACY)
    return None


def _as_pairs(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Return ``first`` with a trailing dimension when ``second`` has one more (N against N, K)."""
    return first.unsqueeze(-1) if first.dim() < second.dim() else first


def _target_problem(
    relation: Relation, items: dict[str, InputItem], inputs: Trial, generator: torch.Generator
) -> _Problem | None:
    """Build a problem for a prediction scored against labels or a target."""
    prediction = items[relation.items[0]]
    name = prediction.name
    shape = inputs[name].shape

    if relation.kind == "labels" and relation.class_dim is not None:
        labels_name = relation.items[1]
        classes = shape[relation.class_dim]
        features = torch.randn((*inputs[labels_name].shape, _FEATURES), generator=generator)
        truth = features @ (torch.randn(_FEATURES, classes, generator=generator) * 2)
        labels = truth.argmax(-1).to(inputs[labels_name].dtype)
        inputs[labels_name] = labels
        for teacher in relation.label_targets:
            inputs[teacher] = truth.movedim(-1, relation.class_dim)
        chance = float(torch.bincount(labels.flatten().long()).max()) / labels.numel()
        score = partial(_accuracy, name=name, labels=labels, class_dim=relation.class_dim)
        threshold = chance + _MIN_ACCURACY_GAIN * (1 - chance)
        return _Problem(
            {name: features},
            items,
            classes,
            inputs,
            "accuracy",
            score,
            threshold,
            class_dim=relation.class_dim,
            chance=chance,
        )

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
    inputs[target_name] = target.reshape(inputs[target_name].shape).to(inputs[target_name].dtype)

    if domain in ("binary", "sign"):
        positive = truth > 0 if not is_distance(prediction) else truth <= 0
        score = partial(_binary_auc, name=name, positive=positive)
        return _Problem({name: features}, items, 1, inputs, "auc", score, _MIN_AUC)
    if domain == "positive" and "log" not in name.lower():
        # A rate or scale predicted directly: the model outputs exp(raw).
        score = partial(_log_correlation, name=name, target=truth)
        return _Problem(
            {name: features},
            items,
            1,
            inputs,
            "correlation",
            score,
            _MIN_CORRELATION,
            positive=True,
        )
    reference = truth if domain in ("prob", "unit", "positive") else target
    score = partial(_correlation, name=name, item=prediction, target=reference)
    problem = _Problem({name: features}, items, 1, inputs, "correlation", score, _MIN_CORRELATION)
    if domain is None:
        problem.distribution = partial(_distribution_gap, name=name, target=target)
    return problem


def _problem(intent: Intent, spec: InputSpec, seed: int) -> _Problem | None:
    """Build a synthetic problem for the first relation that has one."""
    items = {item.name: item for item in spec.items}
    sizes = dict(spec.trial_sizes()[0])
    if "N" in sizes:
        sizes["N"] = _TRAIN_BATCH
    generator = torch.Generator().manual_seed(seed + 2000)
    inputs = {n: t.detach() for n, t in make_trial(spec, sizes, seed + 2000).items()}

    for relation in intent.relations:
        if relation.kind in ("labels", "match"):
            problem = _target_problem(relation, items, inputs, generator)
        elif relation.kind == "prior":
            problem = None
        else:
            problem = _pair_problem(relation, items, inputs, generator)
        if problem is not None:
            return problem
    return None


def _predict(problem: _Problem, weight: torch.Tensor, bias: torch.Tensor) -> Predictions:
    """Return the model's value of every input it produces."""
    predicted = {}
    for name, features in problem.features.items():
        item = problem.items[name]
        raw = features @ weight + bias
        if problem.class_dim is not None:
            raw = raw.movedim(-1, problem.class_dim)
            if item.domain == "prob":
                raw = torch.softmax(raw, dim=problem.class_dim)
            elif is_log_probability(item):
                raw = torch.log_softmax(raw, dim=problem.class_dim)
        else:
            if problem.outputs == 1:
                raw = raw.squeeze(-1)
            if problem.positive:
                raw = torch.exp(raw.clamp(max=20.0))
            elif item.domain == "unit":
                raw = torch.sigmoid(raw)
            elif item.domain == "prob":
                raw = torch.softmax(raw, dim=-1)
            elif is_log_probability(item) and raw.dim() > 1:
                raw = torch.log_softmax(raw, dim=-1)
        predicted[name] = raw
    return predicted


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
    weight = torch.randn(_FEATURES, problem.outputs, generator=generator) * 0.01
    weight.requires_grad_()
    bias = torch.zeros(problem.outputs, requires_grad=True)
    optimizer = _Adam([weight, bias], _TRAIN_LR)
    names = list(problem.inputs)
    curve: list[dict[str, float]] = []

    for step in range(_TRAIN_STEPS + 1):
        predicted = _predict(problem, weight, bias)
        inputs = {**problem.inputs, **predicted}
        output = fn(*(inputs[name] for name in names))
        value = loss_value(output)
        if step % _CURVE_EVERY == 0:
            point = {"step": step, "loss": value, problem.metric: problem.score(predicted)}
            if problem.distribution is not None:
                point["distribution_gap"] = problem.distribution(predicted)
            curve.append(point)
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
    matched = problem.distribution is not None and (
        curve[-1]["distribution_gap"] <= _MAX_GAP_FRACTION * curve[0]["distribution_gap"]
    )
    if end < problem.threshold and not matched:
        message = (
            f"a model trained {_TRAIN_STEPS} steps with the loss reaches {problem.metric} "
            f"{end:.3f} (from {start:.3f}), below {problem.threshold:.3f}: the loss does not "
            "pull predictions towards the targets"
        )
        return CheckResult("trainable", "fail", message, evidence)
    message = f"{problem.metric} {start:.3f} -> {end:.3f} in {_TRAIN_STEPS} steps"
    return CheckResult("trainable", "pass", message, evidence)
