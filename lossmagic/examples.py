"""Worked examples put into the generation prompt before the real task.

Small models adapt a closely related example far more reliably than they write a loss
from a description alone, so the prompt shows one solved task of the same family.
"""

from __future__ import annotations

from lossmagic.prompts import WorkedExample
from lossmagic.spec import InputSpec, parse_spec

__all__ = ["pick_examples"]

_CLASSIFICATION = WorkedExample(
    task="cross-entropy with label smoothing 0.1 for multi-class classification",
    spec=parse_spec("logits:float[N,C] targets:long[N]<C"),
    name="smoothed_cross_entropy",
    body=(
        "    log_probs = F.log_softmax(logits, dim=-1)\n"
        "    true_class = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)\n"
        "    uniform = log_probs.mean(dim=-1)\n"
        "    return -(0.9 * true_class + 0.1 * uniform).mean()"
    ),
)

_REGRESSION = WorkedExample(
    task="Huber loss with delta 1.0 for regression",
    spec=parse_spec("predictions:float[N,D] targets:float[N,D]"),
    name="huber_loss",
    body=(
        "    error = predictions - targets\n"
        "    absolute = error.abs()\n"
        "    quadratic = 0.5 * error ** 2\n"
        "    linear = absolute - 0.5\n"
        "    return torch.where(absolute <= 1.0, quadratic, linear).mean()"
    ),
)


def pick_examples(task: str, spec: InputSpec) -> tuple[WorkedExample, ...]:
    """Pick the built-in example whose inputs look most like ``spec``."""
    has_class_targets = any(not item.is_float and item.bound is not None for item in spec.items)
    return (_CLASSIFICATION,) if has_class_targets else (_REGRESSION,)
