"""Listing the backends and models that can be used on this machine."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["list_models"]


def list_models() -> list[dict[str, Any]]:
    """Return one entry per usable backend and model: backend, model, path, status."""
    from lossmagic.backends.embedded import EMBEDDED_MODEL_NAME, READY_MARKER, embedded_model_path

    path = embedded_model_path()
    prepared = (path / READY_MARKER).is_file()
    entries: list[dict[str, Any]] = [
        {
            "backend": "embedded",
            "model": EMBEDDED_MODEL_NAME,
            "path": str(path),
            "status": "ready" if prepared else "not prepared (run: lossmagic models --prepare)",
            "default": True,
        }
    ]

    base_url = os.environ.get("LOSSMAGIC_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    if base_url:
        entries.append(
            {
                "backend": "openai",
                "model": "(the server's models)",
                "path": None,
                "base_url": base_url,
                "status": "configured by environment",
                "default": False,
            }
        )
    return entries
