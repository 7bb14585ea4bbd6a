"""The interface that every model backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lossmagic.progress import ProgressCallback

__all__ = [
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "TokenCallback",
    "cut_at_stop",
]

Role = Literal["system", "user", "assistant"]

TokenCallback = Callable[[int], None]
"""Called during generation with the number of new tokens since the last call."""


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a chat prompt."""

    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request.

    ``prefill`` starts the assistant turn: the model continues it, and each
    ``Completion.text`` contains only the continuation. ``n`` requests that many
    independent samples of the same prompt.
    """

    messages: tuple[ChatMessage, ...]
    prefill: str = ""
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    n: int = 1


@dataclass
class Completion:
    """One sampled continuation and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str = "stop"
    extra: dict[str, object] = field(default_factory=dict)


class Backend(abc.ABC):
    """A chat model that completes requests.

    Implementations load lazily on the first request, so constructing one is cheap
    and configuration errors that need no model are raised at once.
    """

    name: str = "base"

    @property
    @abc.abstractmethod
    def model(self) -> str:
        """Return the model id or path that this backend generates with."""

    @property
    def supports_prefill(self) -> bool:
        """Return whether the backend can start the assistant turn with given text."""
        return True

    @abc.abstractmethod
    def complete(
        self, request: ChatRequest, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        """Return ``request.n`` completions of ``request``."""

    def prepare(self, progress: ProgressCallback | None = None) -> None:  # noqa: B027
        """Load the model now instead of on the first request (a no-op by default)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release the model and any memory it holds."""

    def describe(self) -> str:
        return f"{self.name}:{self.model}"


def render_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Convert messages to the plain dicts that chat templates and servers take."""
    return [{"role": m.role, "content": m.content} for m in messages]


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; return the text and whether one occurred."""
    positions = [text.find(stop) for stop in stops if stop and stop in text]
    if not positions:
        return text, False
    return text[: min(positions)], True
