"""The catalog of standard losses: references, retrieval and the inputs of the cross-check.

Each entry carries the names and words a task may use for the loss, its parameters with
defaults, an input spec and a reference implementation written from the published
formula. Retrieval (``search``, ``match_reference``) finds the entries a task asks for.
"""

from __future__ import annotations

from lossmagic.catalog import (
    classification,
    distillation,
    embedding,
    generative,
    ranking,
    regression,
    segmentation,
)
from lossmagic.catalog.entry import FAMILIES, CatalogEntry, Parameter, Reference

__all__ = ["ENTRIES", "FAMILIES", "CatalogEntry", "Parameter", "Reference", "get_entry"]

ENTRIES: tuple[CatalogEntry, ...] = (
    *classification.ENTRIES,
    *regression.ENTRIES,
    *segmentation.ENTRIES,
    *embedding.ENTRIES,
    *distillation.ENTRIES,
    *ranking.ENTRIES,
    *generative.ENTRIES,
)

_BY_KEY = {entry.key: entry for entry in ENTRIES}
if len(_BY_KEY) != len(ENTRIES):
    raise RuntimeError("two catalog entries share a key")


def get_entry(key: str) -> CatalogEntry:
    """Return the entry with ``key``; raise KeyError naming the known keys otherwise."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no catalog entry {key!r}; known entries: {', '.join(_BY_KEY)}") from None
