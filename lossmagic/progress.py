"""Progress events that the engine sends to the CLI, the notebook display and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Event", "EventKind", "ProgressCallback", "emit"]

EventKind = Literal["notice", "stage", "tokens", "iteration", "done"]


@dataclass(frozen=True)
class Event:
    """One progress event.

    Each kind fills its own fields:

    - ``notice``: a one-line message for the user.
    - ``stage``: the step the run is in (``message``), with ``iteration`` and ``max_iters``.
    - ``tokens``: ``count`` new tokens.
    - ``iteration``: the finished iteration record in ``data["record"]``.
    - ``done``: the run result in ``data["result"]``.
    """

    kind: EventKind
    message: str = ""
    iteration: int = 0
    max_iters: int = 0
    count: int = 0
    data: dict[str, object] = field(default_factory=dict)


ProgressCallback = Callable[[Event], None]


def emit(callback: ProgressCallback | None, event: Event) -> None:
    """Send ``event`` to ``callback`` when there is one."""
    if callback is not None:
        callback(event)
