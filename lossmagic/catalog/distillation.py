"""Distillation and divergence losses, written from their published formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossmagic.catalog.entry import CatalogEntry, Parameter

__all__ = ["ENTRIES"]


def knowledge_distillation(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(student / T)), summed over classes, batch mean.

    Source: Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015,
    section 2 (the T^2 factor keeps gradient magnitudes independent of T).
    """
    teacher = torch.log_softmax(teacher_logits / temperature, dim=-1)
    student = torch.log_softmax(student_logits / temperature, dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(dim=-1)
    return kl.mean() * temperature**2


def distillation_with_labels(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """alpha T^2 KL(teacher_T || student_T) + (1 - alpha) cross-entropy with the hard labels.

    Source: Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015,
    section 2 (weighted average of the soft and hard objectives).
    """
    teacher = torch.log_softmax(teacher_logits / temperature, dim=-1)
    student = torch.log_softmax(student_logits / temperature, dim=-1)
    soft = (teacher.exp() * (teacher - student)).sum(dim=-1).mean() * temperature**2
    hard = F.cross_entropy(student_logits, targets.long())
    return alpha * soft + (1.0 - alpha) * hard


def kl_divergence(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """KL(q || softmax(logits)) = sum_c q_c (log q_c - log p_c), averaged over the batch.

    Source: Kullback and Leibler, "On Information and Sufficiency", Annals of Mathematical
    Statistics 1951; 0 log 0 is taken as 0.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    return (torch.xlogy(target_probs, target_probs) - target_probs * log_p).sum(dim=-1).mean()


def jensen_shannon(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2, batch mean.

    Source: Lin, "Divergence Measures Based on the Shannon Entropy", IEEE Transactions on
    Information Theory 1991, with natural logarithms.
    """
    p = torch.softmax(logits, dim=-1)
    m = 0.5 * (p + target_probs)
    log_m = torch.log(m.clamp(min=1e-30))
    kl_p = (torch.xlogy(p, p) - p * log_m).sum(dim=-1)
    kl_q = (torch.xlogy(target_probs, target_probs) - target_probs * log_m).sum(dim=-1)
    return (0.5 * kl_p + 0.5 * kl_q).mean()


_TEMPERATURE = Parameter(
    "temperature", 4.0, ("t", "\N{GREEK SMALL LETTER TAU}", "tau", "softening")
)

ENTRIES = (
    CatalogEntry(
        key="distillation",
        names=(
            "knowledge distillation loss",
            "distillation loss",
            "Hinton distillation",
            "KD loss",
        ),
        family="distillation",
        description=(
            "KL divergence from the teacher's temperature-softened softmax to the student's, "
            "summed over classes, averaged over the batch and multiplied by the temperature "
            "squared"
        ),
        spec="student_logits:float[N,C] teacher_logits:float[N,C]",
        reference=knowledge_distillation,
        parameters=(_TEMPERATURE,),
        keywords=(
            "teacher",
            "student",
            "soften",
            "softened",
            "soft targets",
            "temperature",
            "dark knowledge",
            "compress",
            "mimic",
        ),
    ),
    CatalogEntry(
        key="distillation_with_labels",
        names=(
            "distillation loss with hard labels",
            "Hinton distillation with labels",
            "combined distillation loss",
        ),
        family="distillation",
        description=(
            "alpha times the temperature-squared KL divergence between softened teacher and "
            "student distributions plus (1 - alpha) times the cross-entropy with the true "
            "labels"
        ),
        spec="student_logits:float[N,C] teacher_logits:float[N,C] targets:long[N]<C",
        reference=distillation_with_labels,
        parameters=(
            _TEMPERATURE,
            Parameter("alpha", 0.5, ("\N{GREEK SMALL LETTER ALPHA}", "weight", "mixing weight")),
        ),
        keywords=(
            "teacher",
            "student",
            "true labels",
            "hard labels",
            "ground truth",
            "temperature",
            "soft targets",
            "weighted",
        ),
    ),
    CatalogEntry(
        key="kl_divergence",
        names=("KL divergence loss", "Kullback-Leibler divergence", "KL loss", "relative entropy"),
        family="distillation",
        description=(
            "the Kullback-Leibler divergence from a target probability distribution to the "
            "softmax of the logits, summed over classes and averaged over the batch"
        ),
        spec="logits:float[N,C] target_probs:float[N,C]~prob",
        reference=kl_divergence,
        keywords=(
            "divergence",
            "distribution",
            "relative entropy",
            "target distribution",
            "information",
        ),
    ),
    CatalogEntry(
        key="jensen_shannon",
        names=("Jensen-Shannon divergence", "JS divergence", "JSD loss"),
        family="distillation",
        description=(
            "the average KL divergence of the predicted softmax distribution and the target "
            "distribution from their midpoint mixture, a symmetric and bounded divergence"
        ),
        spec="logits:float[N,C] target_probs:float[N,C]~prob",
        reference=jensen_shannon,
        keywords=("symmetric", "mixture", "midpoint", "bounded", "divergence", "distribution"),
    ),
)
