"""Reading a standard loss's parameter values and reduction from the task text."""

from __future__ import annotations

import re

from lossmagic.catalog.entry import CatalogEntry

__all__ = ["asks_for_other_reduction", "read_parameters"]

_NUMBER = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?|-?\.\d+)"
_LINK = r"\s*(?:=|:|of|is|to|at|set to|equal to|equals|value of|value)?\s*"

_OTHER_REDUCTION = re.compile(
    r"reduction\s*=?\s*['\"]?(sum|none)\b"
    r"|\bsum(?:med)? over (?:the |a |all )?(?:batch|samples|examples|elements|pixels)"
    r"|\b(?:sum|summed) reduction\b"
    r"|\bno reduction\b|\bunreduced\b|\bper[- ](?:sample|example|element) (?:loss|values)\b"
    r"|\bwithout (?:averaging|reduction)\b"
)


def read_parameters(task: str, entry: CatalogEntry) -> dict[str, float]:
    """Return the values that ``task`` states for ``entry``'s parameters.

    A value counts when one of the parameter's phrases stands right before it ("gamma 2",
    "temperature of 4", "margin=0.5") or right after it ("0.1 label smoothing").
    """
    # NOTE: a value stated in other words ("divide the logits by 4" for a temperature) is
    # missed, so the default is used and a correct candidate may be reported as disagreeing.
    text = task.lower()
    values: dict[str, float] = {}
    for parameter in entry.parameters:
        for phrase in parameter.all_phrases:
            words = re.escape(phrase.lower())
            after = re.search(rf"(?<![\w.]){words}{_LINK}{_NUMBER}(?![\w.])", text)
            before = re.search(rf"(?<![\w.]){_NUMBER}\s+{words}(?!\w)", text)
            found = after or before
            if found is not None:
                values[parameter.name] = float(found.group(1))
                break
    return values


def asks_for_other_reduction(task: str) -> bool:
    """Return whether the task asks for a sum or for no reduction instead of the mean."""
    return _OTHER_REDUCTION.search(task.lower()) is not None
