"""Model backends behind one interface, and a factory that builds one by name."""

from __future__ import annotations

from lossmagic.backends.base import Backend, ChatMessage, ChatRequest, Completion, TokenCallback
from lossmagic.exceptions import ConfigurationError

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "TokenCallback",
    "create_backend",
]

BACKEND_NAMES = ("embedded", "transformers", "openai", "scripted")


def create_backend(
    name: str,
    model: str | None = None,
    device: str = "auto",
    base_url: str | None = None,
) -> Backend:
    """Build the backend called ``name``; models load on first use, not here."""
    if name == "embedded":
        from lossmagic.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(device=device)
    if name == "transformers":
        from lossmagic.backends.transformers import TransformersBackend

        if not model:
            raise ConfigurationError(
                "the transformers backend needs a model.", "Pass --model PATH_OR_HUB_ID."
            )
        return TransformersBackend(model, device=device)
    if name == "openai":
        from lossmagic.backends.openai import OpenAIBackend

        return OpenAIBackend(model=model, base_url=base_url)
    if name == "scripted":
        from lossmagic.backends.scripted import ScriptedBackend

        return ScriptedBackend.from_file(model)
    raise ConfigurationError(
        f"unknown backend {name!r}.", f"Use one of: {', '.join(BACKEND_NAMES[:3])}."
    )
