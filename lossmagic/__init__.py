"""lossmagic: turn a plain-language description of a loss into a validated PyTorch function.

In a notebook::

    %load_ext lossmagic

    %%lossgen --name focal --inputs "logits:float[N,C] targets:long[N]<C"
    focal loss with gamma 2 for imbalanced CIFAR-10

From Python, ``lossmagic.generate_loss(task, inputs=..., name=...)``; from a shell,
``lossmagic generate TASK --inputs SPEC``.
"""

from __future__ import annotations

from typing import Any

from lossmagic.api import LossResult, clear_caches, generate_loss
from lossmagic.exceptions import (
    BackendError,
    ConfigurationError,
    ExtractionError,
    InputSpecError,
    LossMagicError,
    SandboxError,
    ServerError,
)
from lossmagic.loop import LoopSettings
from lossmagic.spec import InputSpec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigurationError",
    "ExtractionError",
    "InputSpec",
    "InputSpecError",
    "LoopSettings",
    "LossMagicError",
    "LossResult",
    "SandboxError",
    "ServerError",
    "clear_caches",
    "generate_loss",
    "load_ipython_extension",
    "parse_spec",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%lossgen`` magics (called by ``%load_ext lossmagic``)."""
    from lossmagic.magics import LossMagics

    ipython.register_magics(LossMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Free cached models when the extension is unloaded."""
    clear_caches()
