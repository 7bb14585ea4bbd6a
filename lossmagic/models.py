"""Listing the backends and models that can be used on this machine.

The embedded entry carries the local ``path`` of the converted model, so any server can
serve that copy (``transformers serve PATH``). When a server URL is given or configured
(``LOSSMAGIC_BASE_URL`` or ``OPENAI_BASE_URL``), its models are listed too.
"""

from __future__ import annotations

from typing import Any

from lossmagic.exceptions import LossMagicError

__all__ = ["list_models"]

# A listing should return quickly, so the server gets one short try.
_LISTING_TIMEOUT = 5.0


def _embedded_entry() -> dict[str, Any]:
    from lossmagic.backends.embedded import EMBEDDED_MODEL_NAME, READY_MARKER, embedded_model_path

    path = embedded_model_path()
    prepared = (path / READY_MARKER).is_file()
    return {
        "backend": "embedded",
        "model": EMBEDDED_MODEL_NAME,
        "path": str(path),
        "status": "ready" if prepared else "not prepared (run: lossmagic models --prepare)",
        "default": True,
    }


def _server_entries(base_url: str) -> list[dict[str, Any]]:
    from lossmagic.backends.openai import OpenAIBackend, ServerSettings

    def entry(model: str, status: str) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": model,
            "path": None,
            "base_url": server.base_url,
            "status": status,
            "default": False,
        }

    server = OpenAIBackend(
        "", base_url, settings=ServerSettings(read_timeout=_LISTING_TIMEOUT, retries=0)
    )
    try:
        served = server.list_models()
    except LossMagicError as exc:
        return [entry("(unknown)", f"unreachable: {exc}")]
    finally:
        server.close()

    if served is None:
        return [entry("(the server has no model list)", "configured")]
    return [entry(model, "served") for model in served]


def list_models(base_url: str | None = None) -> list[dict[str, Any]]:
    """Return one entry per usable backend and model: backend, model, path, status.

    Server entries also carry ``base_url``. A server that cannot be reached gets one
    entry whose status starts with ``unreachable:`` instead of an exception.
    """
    from lossmagic.backends.openai import resolve_base_url

    entries = [_embedded_entry()]
    url = resolve_base_url(base_url)
    if url:
        entries.extend(_server_entries(url))
    return entries
