"""Catalog entries: one standard loss with its names, parameters, input spec and reference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lossmagic.spec import InputSpec, parse_spec

__all__ = ["FAMILIES", "CatalogEntry", "Parameter", "Reference"]

Reference = Callable[..., torch.Tensor]
"""A reference loss: the inputs positionally in spec order, then parameters as keywords."""

FAMILIES = (
    "classification",
    "regression",
    "segmentation",
    "metric learning",
    "distillation",
    "ranking",
    "generative",
    "regularized",
)


@dataclass(frozen=True)
class Parameter:
    """A numeric hyperparameter of a standard loss, with the words a task uses for it."""

    name: str
    default: float
    phrases: tuple[str, ...] = ()
    """Words that introduce the value in a task ("gamma", "focusing parameter")."""

    @property
    def all_phrases(self) -> tuple[str, ...]:
        return (self.name.replace("_", " "), *self.phrases)


@dataclass(frozen=True)
class CatalogEntry:
    """One standard loss: how tasks name and describe it, and how to compute it."""

    key: str
    names: tuple[str, ...]
    """The usual names, most common first; the first is the display name."""
    family: str
    description: str
    """The formula in words, written for retrieval and for the worked example's task."""
    spec: str
    reference: Reference
    parameters: tuple[Parameter, ...] = ()
    keywords: tuple[str, ...] = ()
    """Words a task may use to describe the loss without naming it."""
    variants: tuple[Reference, ...] = ()
    """Other published conventions the cross-check accepts, such as Dice per batch."""
    elementwise: bool = False
    """The reference works on inputs of any shape, as long as they all share it."""
    defaults: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} for {self.key!r}; use {FAMILIES}")
        object.__setattr__(self, "defaults", {p.name: p.default for p in self.parameters})

    @property
    def title(self) -> str:
        return self.names[0]

    @property
    def input_spec(self) -> InputSpec:
        return parse_spec(self.spec)

    def compute(self, *inputs: torch.Tensor, **params: Any) -> torch.Tensor:
        """Evaluate the reference with the defaults overridden by ``params``."""
        return self.reference(*inputs, **{**self.defaults, **params})

    def task_text(self, params: dict[str, float] | None = None) -> str:
        """Describe the loss as a task, with its parameter values, for a worked example."""
        values = {**self.defaults, **(params or {})}
        settings = ", ".join(f"{name} = {_format(value)}" for name, value in values.items())
        suffix = f" ({settings})" if settings else ""
        return f"{self.title}{suffix}: {self.description}"


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
