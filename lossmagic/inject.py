"""Defining validated code as a live function, with its source visible to ``inspect``."""

from __future__ import annotations

import linecache
from typing import Any

from lossmagic.exceptions import LossMagicError
from lossmagic.records import source_hash

__all__ = ["compile_validated"]


def compile_validated(source: str, expected_sha256: str, name: str) -> Any:
    """Execute validated ``source`` and return the object it defines as ``name``.

    The source must hash to ``expected_sha256``, the hash recorded when it validated,
    so that only the exact code that passed the checks ever runs here. The source is
    registered in ``linecache`` under a unique file name, so ``inspect.getsource`` and
    tracebacks show it.
    """
    actual = source_hash(source)
    if actual != expected_sha256:
        raise LossMagicError(
            f"refusing to define {name!r}: its source hash {actual[:12]} differs from the "
            f"validated hash {expected_sha256[:12]}; generate it again"
        )

    filename = f"<lossmagic-{name}-{actual[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"__name__": f"lossmagic_generated_{name}"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]
