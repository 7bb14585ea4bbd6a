"""What a loss is for, read from its input spec and task text.

The checks and probes need to know more than shapes: which input is the prediction,
which are targets, how a prediction that agrees with its target looks, and whether the
task requests a mean, a sum or no reduction. ``infer_intent`` reads this from the spec
(names, shapes, dtypes, domains) and a few words of the task. It never looks at a
candidate, so every candidate for one task is judged by the same intent.

Relations between inputs, each named by its ``kind``:

- ``labels``: a float prediction and integer class labels; ``class_dim`` is the
  prediction's class dimension, or None for binary labels of the prediction's own shape.
- ``match``: a prediction that should equal a target of the same shape (regression,
  distillation, probabilities, binary masks). ``squeeze`` is set when the shapes differ
  only by trailing dimensions of size 1, the classic (N, 1) against (N,) case.
- ``signed_pair`` and ``binary_pair``: two inputs and a per-sample label that says
  whether they belong together (cosine embedding, contrastive, margin ranking).
- ``triplet``: an anchor, a positive and a negative of the same shape.
- ``ranked``: scores that should be higher (positive, real, chosen) and scores that
  should be lower (negative, fake, rejected), told apart by their names.
- ``prior``: a VAE posterior's mean and log-variance, at their best when both are 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lossmagic.spec import InputItem, InputSpec

__all__ = [
    "Family",
    "Intent",
    "Reduction",
    "Relation",
    "infer_intent",
    "is_distance",
    "is_log_probability",
    "reduction_from_task",
]

Family = Literal[
    "classification", "binary", "regression", "embedding", "triplet", "ranking", "vae", "unknown"
]
Reduction = Literal["mean", "sum", "none"]
RelationKind = Literal[
    "labels", "match", "signed_pair", "binary_pair", "triplet", "ranked", "prior"
]


@dataclass(frozen=True)
class Relation:
    """A relation between inputs that a target-consistent trial satisfies."""

    kind: RelationKind
    items: tuple[str, ...]
    """The inputs involved, prediction first; the meaning of the rest depends on ``kind``."""
    class_dim: int | None = None
    squeeze: bool = False
    label_targets: tuple[str, ...] = ()
    """Float targets of a ``labels`` relation (teacher logits) that should agree with it."""
    similar_label: float | None = None
    """The label value of a similar pair in a ``binary_pair``, or None when unknown."""

    @property
    def targets(self) -> tuple[str, ...]:
        """Return the inputs that act as targets: no gradient needs to reach them."""
        if self.kind in ("labels", "match"):
            return (*self.items[1:], *self.label_targets)
        if self.kind in ("signed_pair", "binary_pair"):
            return self.items[2:]
        return ()


@dataclass(frozen=True)
class Intent:
    """The family of a loss, the relations of its inputs and the reduction it should use."""

    family: Family
    relations: tuple[Relation, ...] = ()
    reduction: Reduction = "mean"
    sum_allowed: bool = False
    """Whether the value may grow with the batch: the task requests a sum, or a VAE ELBO."""
    per_sample: bool = False
    """Whether the loss is a mean of per-sample terms, so a duplicated batch keeps its value."""

    @property
    def targets(self) -> set[str]:
        """Return the names of inputs that act as targets in any relation."""
        return {name for relation in self.relations for name in relation.targets}


_NO_REDUCTION = re.compile(
    r"no reduction|without reduction|reduction\s*=\s*['\"]?none|unreduced|not reduced",
    re.IGNORECASE,
)
_PER_SAMPLE = re.compile(
    r"per[- ](?:sample|element|example|pixel|item) (?:loss|losses|values)"
    r"|(?:loss|value) (?:for|of|per) each (?:sample|element|example)",
    re.IGNORECASE,
)
_REDUCING = re.compile(r"\b(?:mean|average|averaged|sum|summed|reduce|reduced)\b", re.IGNORECASE)
_SUM = re.compile(
    r"reduction\s*=\s*['\"]?sum|\bsum(?:med)? (?:over|across) (?:the )?(?:batch|samples|all)"
    r"|\bsum reduction|\bsum of (?:the )?(?:squared|absolute|per|losses|errors)"
    r"|\btotal over\b|\bnot averaged\b|\bsse\b",
    re.IGNORECASE,
)
_BATCH_MEAN = re.compile(
    r"(?:mean|average|averaged) (?:over|across) (?:the )?batch|batch ?mean", re.IGNORECASE
)
_DISTILLATION = re.compile(
    r"distill|kl[- ]div|kullback|soft[- ]?labels?\b|soft targets?\b", re.IGNORECASE
)
_BATCH_WORDS = re.compile(
    r"in-batch|infonce|info nce|nt-?xent|simclr|clip|batch[- ]hard|hard negative|batch[- ]all"
    r"|barlow|vicreg|correlation|listwise|softmax over the batch|across the batch|batch statistics"
    r"|ohem|hard example|hardest|top-?k\b"
    r"|mmd|discrepancy|coral\b|wasserstein|sinkhorn|optimal transport|energy distance",
    re.IGNORECASE,
)
_HIGHER_WORDS = {"pos", "positive", "real", "chosen", "preferred", "win", "winner", "good"}
_LOWER_WORDS = {"neg", "negative", "fake", "rejected", "lose", "loser", "bad", "generated"}
_TRIPLET_WORDS = {"anchor", "anchors", "positive", "negative", "pos", "neg", "query"}
_SIMILAR_WORDS = {"similar", "same", "match", "matching", "positive", "pos", "is_similar"}
_DISSIMILAR_WORDS = {"dissimilar", "different", "negative", "neg", "is_dissimilar"}
_LABEL_ONE = re.compile(
    r"\b1\s*(?:=|is|for|means|marks|indicates|if)\s*(?:a |the )?"
    r"(similar|same|matching|positive|dissimilar|different|negative)",
    re.IGNORECASE,
)
_TARGET_WORDS = {
    "target",
    "targets",
    "label",
    "labels",
    "y",
    "gt",
    "truth",
    "true",
    "mask",
    "teacher",
    "reference",
    "ref",
}
_MEAN_NAMES = ("mu", "mean", "z_mean", "mu_z", "means")
_LOGVAR_NAMES = ("logvar", "log_var", "logvariance", "log_variance", "z_logvar", "logsigma2")


def reduction_from_task(task: str) -> Reduction:
    """Return the reduction that ``task`` requests: none, sum, or mean by default."""
    if _NO_REDUCTION.search(task):
        return "none"
    if _PER_SAMPLE.search(task) and not _REDUCING.search(task):
        return "none"
    if _SUM.search(task) and not _BATCH_MEAN.search(task):
        return "sum"
    return "mean"


def infer_intent(spec: InputSpec, task: str = "") -> Intent:
    """Infer the family, the input relations and the reduction from ``spec`` and ``task``."""
    relations = _relations(spec, task)
    family = _family(spec, relations)
    reduction = reduction_from_task(task)
    sum_allowed = reduction == "sum" or family == "vae"
    per_sample = _is_per_sample(spec, relations, family, task) and not _BATCH_WORDS.search(task)
    return Intent(
        family=family,
        relations=tuple(relations),
        reduction=reduction,
        sum_allowed=sum_allowed,
        per_sample=per_sample,
    )


def _relations(spec: InputSpec, task: str) -> list[Relation]:
    floats = [item for item in spec.items if item.is_float]
    used: set[str] = set()
    relations: list[Relation] = []

    prior = _prior(floats)
    if prior is not None:
        relations.append(prior)
        used.update(prior.items)

    labels = [item for item in spec.items if _is_label(item)]
    relations.extend(_pairs(floats, labels, used, task))

    free = [item for item in floats if item.name not in used]
    plain = all(item.domain is None for item in free)
    named = any(_words(item.name) & _TRIPLET_WORDS for item in free)
    same = len({item.dims for item in free}) == 1
    if len(free) == 3 and same and plain and named and not labels:
        relations.append(Relation("triplet", tuple(item.name for item in free)))
        used.update(item.name for item in free)

    ranked = _ranked([item for item in free if item.name not in used], used)
    if ranked is not None:
        relations.append(ranked)

    relations.extend(_class_labels(spec, floats, used))

    free = [item for item in floats if item.name not in used]
    for position, prediction in enumerate(free):
        if prediction.name in used:
            continue
        partners = [
            item
            for item in free[position + 1 :]
            if item.name not in used and _squeezed(item.dims) == _squeezed(prediction.dims)
        ]
        if not partners:
            continue
        # Prefer a partner named like a target, then one of the prediction's own domain,
        # so that a variance next to a mean and its target is not taken as the target.
        target = next(
            (p for p in partners if _is_target(p)),
            next((p for p in partners if p.domain == prediction.domain), partners[0]),
        )
        pair = (prediction, target)
        if _is_target(prediction) and not _is_target(target):
            pair = (target, prediction)
        squeeze = prediction.dims != target.dims
        relations.append(Relation("match", (pair[0].name, pair[1].name), squeeze=squeeze))
        used.update((prediction.name, target.name))
    return relations


def is_distance(item: InputItem) -> bool:
    """Return whether ``item`` is named as a distance: small for similar pairs."""
    return bool(_words(item.name) & {"dist", "dists", "distance", "distances", "dissimilarity"})


def is_log_probability(item: InputItem) -> bool:
    """Return whether ``item`` is named as log-probabilities (log_probs, logp, ...)."""
    name = item.name.lower().replace("_", "")
    return "logprob" in name or name == "logp" or "logsoftmax" in name


def _is_target(item: InputItem) -> bool:
    """Return whether ``item`` looks like a target: a discrete domain or a target's name."""
    return item.domain in ("binary", "sign") or bool(_words(item.name) & _TARGET_WORDS)


def _prior(floats: list[InputItem]) -> Relation | None:
    means = [item for item in floats if item.name.lower() in _MEAN_NAMES]
    logvars = [item for item in floats if item.name.lower() in _LOGVAR_NAMES]
    if means and logvars and means[0].dims == logvars[0].dims:
        return Relation("prior", (means[0].name, logvars[0].name))
    return None


def _is_label(item: InputItem) -> bool:
    """Return whether ``item`` is a per-sample label: sign, 0/1 or [0, 1] values in one dim.

    A [0, 1] label is a soft one, such as RankNet's probability that one item ranks first.
    """
    if len(item.dims) != 1:
        return False
    if item.is_float:
        return item.domain in ("sign", "binary", "unit")
    return item.dtype == "bool" or item.bound == 2


def _words(name: str) -> set[str]:
    return set(name.lower().split("_")) | {name.lower()}


def _ranked(free: list[InputItem], used: set[str]) -> Relation | None:
    """Find scores that should rank above others, by their names (BPR, GAN critics)."""
    higher = [item for item in free if _words(item.name) & _HIGHER_WORDS]
    lower = [item for item in free if _words(item.name) & _LOWER_WORDS]
    for first in higher:
        for second in lower:
            if first.dims[:1] == second.dims[:1] and first.name != second.name:
                used.update((first.name, second.name))
                return Relation("ranked", (first.name, second.name))
    return None


def _similar_label(label: InputItem, task: str) -> float | None:
    """Return the 0/1 label value of a similar pair, if the names or the task state it."""
    stated = _LABEL_ONE.search(task)
    if stated is not None:
        return 0.0 if stated[1].lower() in ("dissimilar", "different", "negative") else 1.0
    if _words(label.name) & _DISSIMILAR_WORDS:
        return 0.0
    if _words(label.name) & _SIMILAR_WORDS:
        return 1.0
    return None


def _pairs(
    floats: list[InputItem], labels: list[InputItem], used: set[str], task: str
) -> list[Relation]:
    """Find two same-shape float inputs that a per-sample label marks as similar or not."""
    for label in labels:
        batch = label.dims[0]
        candidates = [
            item
            for item in floats
            if item.name not in used and item.name != label.name and item.dims[:1] == (batch,)
        ]
        for position, first in enumerate(candidates):
            second = next((c for c in candidates[position + 1 :] if c.dims == first.dims), None)
            if second is None:
                continue
            used.update((first.name, second.name, label.name))
            names = (first.name, second.name, label.name)
            if label.domain == "sign":
                return [Relation("signed_pair", names)]
            return [Relation("binary_pair", names, similar_label=_similar_label(label, task))]
    return []


def _class_labels(spec: InputSpec, floats: list[InputItem], used: set[str]) -> list[Relation]:
    """Find float predictions scored against integer class labels."""
    relations: list[Relation] = []
    for labels in spec.items:
        if labels.is_float or labels.name in used:
            continue
        matches = [
            (item, dim)
            for item in floats
            if item.name not in used
            for dim in [_class_dim(item, labels)]
            if dim is not False
        ]
        if not matches:
            continue
        prediction, class_dim = matches[0]
        if class_dim is None and any(item.dims == prediction.dims for item, _ in matches[1:]):
            # Two float inputs of one shape next to 0/1 values: a prediction, its float
            # target and a mask, so the pair is matched below instead.
            continue
        teachers = tuple(item.name for item, dim in matches[1:] if item.dims == prediction.dims)
        relations.append(
            Relation(
                "labels",
                (prediction.name, labels.name),
                class_dim=class_dim if isinstance(class_dim, int) else None,
                label_targets=teachers,
            )
        )
        used.update((prediction.name, *teachers))
    return relations


def _class_dim(prediction: InputItem, labels: InputItem) -> int | bool | None:
    """Return the class dimension of ``prediction`` for ``labels``, None for binary, or False."""
    binary = labels.dtype == "bool" or labels.bound == 2
    if binary and _squeezed(prediction.dims) == _squeezed(labels.dims):
        return None
    if labels.bound is None:
        return False
    for dim, size in enumerate(prediction.dims):
        rest = prediction.dims[:dim] + prediction.dims[dim + 1 :]
        if size == labels.bound and rest == labels.dims:
            return dim
    return False


def _squeezed(dims: tuple[int | str, ...]) -> tuple[int | str, ...]:
    trimmed = list(dims)
    while trimmed and trimmed[-1] == 1:
        trimmed.pop()
    return tuple(trimmed)


def _family(spec: InputSpec, relations: list[Relation]) -> Family:
    kinds = {relation.kind for relation in relations}
    if "prior" in kinds:
        return "vae"
    if "triplet" in kinds:
        return "triplet"
    if kinds & {"signed_pair", "binary_pair"}:
        return "embedding"
    if "ranked" in kinds:
        return "ranking"
    for relation in relations:
        if relation.kind == "labels":
            return "classification" if relation.class_dim is not None else "binary"
    for relation in relations:
        if relation.kind == "match":
            target = _item(spec, relation.items[1])
            return "binary" if target.domain in ("binary", "sign") else "regression"
    return "unknown"


def _is_per_sample(spec: InputSpec, relations: list[Relation], family: Family, task: str) -> bool:
    """Return whether the loss must be a mean of per-sample terms.

    That holds for a prediction with one value per sample and class (N, C), (N) or
    (N, 1), and for distillation between (N, C) logits. Spatial predictions may be
    scored by batch-level ratios with smoothing terms (Dice, Jaccard), and other (N, D)
    matches may be in-batch contrastive losses, so both may change a little when the
    batch is repeated.
    """
    if family not in ("classification", "binary", "regression"):
        return False
    for relation in relations:
        if relation.kind not in ("labels", "match"):
            continue
        prediction = _item(spec, relation.items[0])
        target = _item(spec, relation.items[1])
        per_class = relation.kind == "labels" and relation.class_dim is not None
        names = _words(prediction.name) | _words(target.name)
        distillation = bool(names & {"student", "teacher"} or _DISTILLATION.search(task))
        allowed = 2 if per_class or distillation or target.domain == "prob" else 1
        return len(_squeezed(prediction.dims)) <= allowed
    return False


def _item(spec: InputSpec, name: str) -> InputItem:
    return next(item for item in spec.items if item.name == name)
