"""Classification losses, each written from its published formula.

Every reference takes the inputs of its entry's spec positionally, then its parameters
as keywords, and uses only ``torch``, ``torch.nn.functional`` and ``math`` so that its
body can be shown to a model as a worked example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy: -log softmax(z)_y, averaged over the batch (Bishop, PRML 4.3.4)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    return -picked.mean()


def label_smoothing_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.1
) -> torch.Tensor:
    """Cross-entropy against (1 - eps) one-hot + eps / C uniform targets.

    Source: Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016, section 7.
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    true_class = log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    uniform = log_probs.mean(dim=-1)
    return -((1.0 - smoothing) * true_class + smoothing * uniform).mean()


def _label_smoothing_over_other_classes(
    logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.1
) -> torch.Tensor:
    """Label smoothing that spreads eps over the C - 1 wrong classes only (a common variant)."""
    classes = logits.shape[-1]
    log_probs = torch.log_softmax(logits, dim=-1)
    one_hot = F.one_hot(targets.long(), classes).to(log_probs.dtype)
    spread = smoothing / max(classes - 1, 1)
    weights = one_hot * (1.0 - smoothing) + (1.0 - one_hot) * spread
    if classes == 1:
        weights = one_hot
    return -(weights * log_probs).sum(dim=-1).mean()


def focal(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 1.0
) -> torch.Tensor:
    """Multi-class focal loss: -alpha (1 - p_y)^gamma log p_y, averaged over the batch.

    Source: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, equation 5.
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    log_pt = log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    pt = log_pt.exp()
    return (-alpha * (1.0 - pt) ** gamma * log_pt).mean()


def sigmoid_focal(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Binary focal loss on logits with alpha balancing of positives and negatives.

    Source: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, equation 5,
    with p_t and alpha_t as defined in section 3.
    """
    probs = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pt = probs * targets + (1.0 - probs) * (1.0 - targets)
    alpha_t = alpha * targets + (1.0 - alpha) * (1.0 - targets)
    return (alpha_t * (1.0 - pt) ** gamma * bce).mean()


def binary_cross_entropy_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logistic loss on logits: -[y log s(x) + (1 - y) log(1 - s(x))], in a stable form.

    Source: Bishop, "Pattern Recognition and Machine Learning", 2006, equation 4.90.
    """
    return (torch.clamp(logits, min=0) - logits * targets + F.softplus(-logits.abs())).mean()


def binary_cross_entropy(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on probabilities, with each log clamped at -100 as PyTorch does.

    Source: Bishop, "Pattern Recognition and Machine Learning", 2006, equation 4.90.
    """
    log_p = torch.clamp(torch.log(probs), min=-100.0)
    log_not_p = torch.clamp(torch.log(1.0 - probs), min=-100.0)
    return -(targets * log_p + (1.0 - targets) * log_not_p).mean()


def negative_log_likelihood(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the true class given log-probabilities (Bishop, PRML 4.3.4)."""
    return -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1).mean()


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy -sum_c q_c log softmax(z)_c against a target distribution q (mixup targets).

    Source: Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018, section 2.
    """
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def multi_class_hinge(
    logits: torch.Tensor, targets: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Multi-class hinge: sum over wrong classes of max(0, margin - z_y + z_j), divided by C.

    Source: Weston and Watkins, "Support Vector Machines for Multi-Class Pattern
    Recognition", ESANN 1999; the division by C follows torch.nn.MultiMarginLoss.
    """
    classes = logits.shape[-1]
    true_score = logits.gather(1, targets.long().unsqueeze(1))
    margins = torch.clamp(margin - true_score + logits, min=0)
    wrong = 1.0 - F.one_hot(targets.long(), classes).to(logits.dtype)
    return ((margins * wrong).sum(dim=-1) / classes).mean()


def hinge(scores: torch.Tensor, targets: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Binary SVM hinge loss max(0, margin - y f(x)) with labels y in {-1, 1}.

    Source: Cortes and Vapnik, "Support-Vector Networks", Machine Learning 1995.
    """
    return torch.clamp(margin - targets * scores, min=0).mean()


def squared_hinge(scores: torch.Tensor, targets: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Squared hinge max(0, margin - y f(x))^2 with labels y in {-1, 1} (L2-SVM).

    Source: Rosasco et al., "Are Loss Functions All the Same?", Neural Computation 2004.
    """
    return (torch.clamp(margin - targets * scores, min=0) ** 2).mean()


def soft_margin(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Two-class logistic loss log(1 + exp(-y f(x))) with labels y in {-1, 1}.

    Source: Hastie, Tibshirani and Friedman, "The Elements of Statistical Learning",
    2nd ed., section 10.6 (binomial deviance).
    """
    return F.softplus(-targets * scores).mean()


def multilabel_soft_margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label one-versus-all logistic loss, averaged over labels and then the batch.

    Source: Bishop, "Pattern Recognition and Machine Learning", 2006, equation 4.90,
    applied to each label independently.
    """
    per_label = F.softplus(-logits) * targets + F.softplus(logits) * (1.0 - targets)
    return per_label.mean(dim=-1).mean()


def poly1(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """Poly-1 loss: cross-entropy + epsilon (1 - p_y).

    Source: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
    Loss Functions", ICLR 2022, equation 3.
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    log_pt = log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    return (-log_pt + epsilon * (1.0 - log_pt.exp())).mean()


def generalized_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7
) -> torch.Tensor:
    """Generalized cross-entropy (1 - p_y^q) / q, robust to noisy labels.

    Source: Zhang and Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels", NeurIPS 2018, equation 6.
    """
    probs = torch.softmax(logits, dim=-1)
    pt = probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    return ((1.0 - pt**q) / q).mean()


def confidence_penalty(
    logits: torch.Tensor, targets: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """Cross-entropy minus beta times the entropy of the predicted distribution.

    Source: Pereyra et al., "Regularizing Neural Networks by Penalizing Confident Output
    Distributions", ICLR 2017 workshop, equation 2.
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return (nll - beta * entropy).mean()


_CLASS_TARGETS = "logits:float[N,C] targets:long[N]<C"
_BINARY = "logits:float[N] targets:float[N]~binary"
_SIGNED = "scores:float[N] targets:float[N]~sign"

ENTRIES = (
    CatalogEntry(
        key="cross_entropy",
        names=(
            "cross-entropy loss",
            "cross entropy",
            "categorical cross-entropy",
            "softmax loss",
            "log loss",
            "multinomial logistic loss",
        ),
        family="classification",
        description=(
            "negative log of the softmax probability assigned to the true class, averaged "
            "over the batch, for multi-class classification"
        ),
        spec=_CLASS_TARGETS,
        reference=cross_entropy,
        keywords=("softmax", "log-likelihood", "true class", "multi-class", "classifier"),
    ),
    CatalogEntry(
        key="label_smoothing",
        names=(
            "label smoothing cross-entropy",
            "label smoothing",
            "smoothed cross-entropy",
            "label-smoothed cross entropy",
        ),
        family="classification",
        description=(
            "cross-entropy against soft targets that put 1 - eps on the true class and "
            "spread eps uniformly over all classes, to stop over-confident logits"
        ),
        spec=_CLASS_TARGETS,
        reference=label_smoothing_cross_entropy,
        parameters=(
            Parameter(
                "smoothing",
                0.1,
                ("label smoothing", "epsilon", "eps", "\N{GREEK SMALL LETTER EPSILON}"),
            ),
        ),
        keywords=(
            "soft targets",
            "uniform",
            "overconfident",
            "over-confident",
            "smoothing",
            "regularize the targets",
            "mass",
        ),
        variants=(_label_smoothing_over_other_classes,),
    ),
    CatalogEntry(
        key="focal",
        names=("focal loss", "multi-class focal loss", "softmax focal loss"),
        family="classification",
        description=(
            "cross-entropy scaled by (1 - p_true)^gamma so that easy, well-classified "
            "examples are down-weighted and training focuses on hard examples under class "
            "imbalance"
        ),
        spec=_CLASS_TARGETS,
        reference=focal,
        parameters=(
            Parameter(
                "gamma",
                2.0,
                ("focusing parameter", "\N{GREEK SMALL LETTER GAMMA}", "exponent", "power"),
            ),
            Parameter(
                "alpha",
                1.0,
                ("balancing factor", "\N{GREEK SMALL LETTER ALPHA}", "weighting factor"),
            ),
        ),
        keywords=(
            "down-weight",
            "downweight",
            "easy examples",
            "hard examples",
            "imbalance",
            "imbalanced",
            "modulating factor",
            "well-classified",
            "confident",
            "rare",
            "correct class",
            "contribute little",
            "less weight",
            "1 - p",
            "multiplies",
            "predicted probability",
            "factor",
            "power",
        ),
    ),
    CatalogEntry(
        key="sigmoid_focal",
        elementwise=True,
        names=("sigmoid focal loss", "binary focal loss", "RetinaNet focal loss"),
        family="classification",
        description=(
            "binary cross-entropy on logits scaled by alpha_t (1 - p_t)^gamma, which "
            "down-weights easy negatives in dense detection with few positives"
        ),
        spec=_BINARY,
        reference=sigmoid_focal,
        parameters=(
            Parameter(
                "gamma", 2.0, ("focusing parameter", "\N{GREEK SMALL LETTER GAMMA}", "exponent")
            ),
            Parameter(
                "alpha",
                0.25,
                ("balancing factor", "\N{GREEK SMALL LETTER ALPHA}", "positive weight"),
            ),
        ),
        keywords=(
            "binary",
            "down-weight",
            "easy negatives",
            "hard examples",
            "imbalance",
            "modulating factor",
            "detection",
            "sigmoid",
            "foreground",
            "background",
        ),
    ),
    CatalogEntry(
        key="bce_with_logits",
        elementwise=True,
        names=(
            "binary cross-entropy with logits",
            "logistic loss",
            "sigmoid cross-entropy",
            "BCE with logits",
            "BCEWithLogits",
            "binary cross-entropy on logits",
            "BCE on logits",
        ),
        family="classification",
        description=(
            "binary cross-entropy computed from raw logits through the sigmoid in a "
            "numerically stable form, for binary labels 0 and 1"
        ),
        spec=_BINARY,
        reference=binary_cross_entropy_with_logits,
        keywords=(
            "binary",
            "sigmoid",
            "two classes",
            "yes no",
            "positive negative",
            "logits",
            "0 or 1",
            "stable",
            "raw scores",
            "classifier",
            "log of sigmoid",
            "positive examples",
            "negative examples",
        ),
    ),
    CatalogEntry(
        key="bce",
        elementwise=True,
        names=("binary cross-entropy", "BCE", "binary log loss"),
        family="classification",
        description=(
            "binary cross-entropy -[y log p + (1 - y) log(1 - p)] on predicted probabilities "
            "in [0, 1], averaged over elements"
        ),
        spec="probs:float[N]~unit targets:float[N]~binary",
        reference=binary_cross_entropy,
        keywords=(
            "binary",
            "probabilities",
            "probability",
            "0 or 1",
            "two classes",
            "predicted probability",
        ),
    ),
    CatalogEntry(
        key="nll",
        names=("negative log-likelihood loss", "NLL loss", "negative log likelihood"),
        family="classification",
        description=(
            "negative log-probability of the true class, read from inputs that are already "
            "log-probabilities (log-softmax outputs)"
        ),
        spec="log_probs:float[N,C] targets:long[N]<C",
        reference=negative_log_likelihood,
        keywords=(
            "log-probabilities",
            "log probabilities",
            "log_softmax",
            "log-softmax",
            "already normalized",
        ),
    ),
    CatalogEntry(
        key="soft_target_cross_entropy",
        names=(
            "soft-target cross-entropy",
            "soft cross-entropy",
            "cross-entropy with soft labels",
            "mixup loss",
        ),
        family="classification",
        description=(
            "cross-entropy between a target probability distribution over classes and the "
            "softmax of the logits, summed over classes and averaged over the batch"
        ),
        spec="logits:float[N,C] targets:float[N,C]~prob",
        reference=soft_target_cross_entropy,
        keywords=(
            "soft labels",
            "distribution",
            "probability targets",
            "mixup",
            "cutmix",
            "target distribution",
        ),
    ),
    CatalogEntry(
        key="multi_class_hinge",
        names=(
            "multi-class hinge loss",
            "multi-margin loss",
            "multiclass SVM loss",
            "Weston-Watkins hinge",
        ),
        family="classification",
        description=(
            "sum over the wrong classes of max(0, margin - score of the true class + score of "
            "the wrong class), divided by the number of classes"
        ),
        spec=_CLASS_TARGETS,
        reference=multi_class_hinge,
        parameters=(Parameter("margin", 1.0, ("delta",)),),
        keywords=("svm", "margin", "wrong classes", "hinge", "multi-class", "multiclass"),
    ),
    CatalogEntry(
        key="hinge",
        elementwise=True,
        names=("hinge loss", "binary hinge loss", "SVM loss"),
        family="classification",
        description=(
            "max(0, margin - y * score) for labels y in {-1, +1}, the loss of a linear "
            "support vector machine"
        ),
        spec=_SIGNED,
        reference=hinge,
        parameters=(Parameter("margin", 1.0),),
        keywords=("svm", "support vector", "plus or minus one", "-1", "+1", "margin"),
    ),
    CatalogEntry(
        key="squared_hinge",
        elementwise=True,
        names=("squared hinge loss", "L2-SVM loss", "quadratic hinge"),
        family="classification",
        description="the square of max(0, margin - y * score) for labels y in {-1, +1}",
        spec=_SIGNED,
        reference=squared_hinge,
        parameters=(Parameter("margin", 1.0),),
        keywords=("svm", "squared", "square", "-1", "+1", "margin"),
    ),
    CatalogEntry(
        key="soft_margin",
        elementwise=True,
        names=("soft margin loss", "two-class logistic loss", "binomial deviance"),
        family="classification",
        description="log(1 + exp(-y * score)) for labels y in {-1, +1}, averaged",
        spec=_SIGNED,
        reference=soft_margin,
        keywords=("logistic", "softplus", "-1", "+1", "plus or minus one", "labels"),
    ),
    CatalogEntry(
        key="multilabel_soft_margin",
        names=(
            "multi-label soft margin loss",
            "multi-label binary cross-entropy",
            "multilabel logistic loss",
        ),
        family="classification",
        description=(
            "an independent sigmoid binary cross-entropy for every label of every sample, "
            "averaged over labels and the batch, for multi-label classification"
        ),
        spec="logits:float[N,C] targets:float[N,C]~binary",
        reference=multilabel_soft_margin,
        keywords=(
            "multi-label",
            "multilabel",
            "several labels",
            "tags",
            "independent",
            "one-vs-all",
            "one-versus-all",
        ),
    ),
    CatalogEntry(
        key="poly1",
        names=("Poly-1 loss", "PolyLoss", "poly loss"),
        family="classification",
        description="cross-entropy plus epsilon times (1 - probability of the true class)",
        spec=_CLASS_TARGETS,
        reference=poly1,
        parameters=(
            Parameter("epsilon", 1.0, ("eps", "\N{GREEK SMALL LETTER EPSILON}", "coefficient")),
        ),
        keywords=("polynomial", "taylor", "expansion", "first polynomial"),
    ),
    CatalogEntry(
        key="generalized_cross_entropy",
        names=("generalized cross-entropy", "GCE loss", "truncated Lq loss"),
        family="classification",
        description=(
            "(1 - p_true^q) / q on softmax probabilities, interpolating between "
            "cross-entropy and mean absolute error to resist noisy labels"
        ),
        spec=_CLASS_TARGETS,
        reference=generalized_cross_entropy,
        parameters=(Parameter("q", 0.7, ("exponent",)),),
        keywords=("noisy labels", "label noise", "robust", "lq", "box-cox"),
    ),
    CatalogEntry(
        key="confidence_penalty",
        names=(
            "confidence penalty",
            "entropy-regularized cross-entropy",
            "cross-entropy with entropy bonus",
        ),
        family="regularized",
        description=(
            "cross-entropy minus beta times the entropy of the predicted softmax "
            "distribution, penalizing over-confident, low-entropy predictions"
        ),
        spec=_CLASS_TARGETS,
        reference=confidence_penalty,
        parameters=(Parameter("beta", 0.1, ("weight", "strength", "coefficient")),),
        keywords=(
            "entropy",
            "overconfident",
            "over-confident",
            "penalize",
            "confident",
            "low-entropy",
            "regularizer",
        ),
    ),
)
