"""Exceptions raised by lossmagic.

The tree::

    LossMagicError
    ├── ConfigurationError        bad settings: an unknown backend, a missing model path,
    │   │                          an empty task, an invalid option value
    │   └── InputSpecError        an input spec that does not parse, with the offending item
    ├── BackendError              the model could not be loaded or did not respond
    │   └── ServerError           an OpenAI-compatible server failed or could not be reached
    ├── ExtractionError           model output holds no usable definition of the function
    └── SandboxError              the sandbox itself failed, not the candidate it ran

Each exception keeps its inputs as attributes and builds its message in ``__str__``,
so callers can inspect the offending value and the fix separately.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigurationError",
    "ExtractionError",
    "InputSpecError",
    "LossMagicError",
    "SandboxError",
    "ServerError",
]


class LossMagicError(Exception):
    """Base class of every error that lossmagic raises on purpose."""


class ConfigurationError(LossMagicError):
    """An option or argument has an invalid value."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem} {self.fix}".strip()


class InputSpecError(ConfigurationError):
    """An input spec item does not parse or does not fit the function."""

    def __init__(self, spec: str, item: str, reason: str) -> None:
        super().__init__(f"invalid input spec item {item!r}: {reason}.")
        self.spec = spec
        self.item = item
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"Invalid input spec item {self.item!r} in {self.spec!r}: {self.reason}. "
            "Write items as NAME:DTYPE[DIMS], for example 'logits:float[N,C] targets:long[N]<C'."
        )


class BackendError(LossMagicError):
    """The model backend could not load the model or produce a completion."""

    def __init__(self, backend: str, problem: str, fix: str = "") -> None:
        super().__init__(backend, problem, fix)
        self.backend = backend
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.backend} backend: {self.problem} {self.fix}".strip()


class ServerError(BackendError):
    """An OpenAI-compatible server failed, timed out or could not be reached."""

    def __init__(self, base_url: str, problem: str, fix: str = "") -> None:
        super().__init__("openai", problem, fix)
        self.base_url = base_url

    def __str__(self) -> str:
        return f"server at {self.base_url}: {self.problem} {self.fix}".strip()


class ExtractionError(LossMagicError):
    """Model output contains no complete, parseable definition of the requested function."""

    def __init__(self, name: str, reason: str, line: int | None = None) -> None:
        super().__init__(name, reason, line)
        self.name = name
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"no usable definition of {self.name!r}{where}: {self.reason}"


class SandboxError(LossMagicError):
    """The sandbox worker failed for a reason that is not the candidate's fault."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return f"sandbox failed: {self.problem}"
