"""Worked examples put into the generation prompt before the real task.

Small models adapt a closely related example far more reliably than they write a loss
from a description alone. The examples come from the catalog of standard losses: the
one or two entries that the task describes best, rewritten for the requested function
name and input names. A task that describes no standard loss well gets no example, so
that it is not pushed towards a loss it did not ask for.
"""

from __future__ import annotations

import logging

from lossmagic.catalog.adapt import example_body, map_inputs
from lossmagic.catalog.retrieval import EXAMPLE_THRESHOLD, Match, match_reference, search
from lossmagic.prompts import WorkedExample
from lossmagic.spec import InputSpec

__all__ = ["MAX_EXAMPLES", "example_for", "pick_examples", "reference_example"]

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 2

SECOND_EXAMPLE_GAP = 0.35
"""A second example is shown only when it scores at most this far below the first."""


def example_for(match: Match, name: str, spec: InputSpec) -> WorkedExample:
    """Return ``match``'s entry as a worked example for a function ``name`` taking ``spec``.

    The example uses the requested inputs when they can fill the reference's roles, and
    the entry's own input spec otherwise.
    """
    entry = match.entry
    order = map_inputs(entry, spec)
    if order is not None:
        names = [spec.items[position].name for position in order]
        body = example_body(entry, names, match.params)
        if body is not None:
            return WorkedExample(entry.task_text(match.params), spec, name, body)

    own = entry.input_spec
    body = example_body(entry, own.names, match.params)
    assert body is not None, "a reference's own names never clash with its body"
    return WorkedExample(entry.task_text(match.params), own, entry.key, body)


def pick_examples(task: str, spec: InputSpec, name: str = "") -> tuple[WorkedExample, ...]:
    """Return up to two worked examples for the catalog entries that ``task`` describes.

    The best match comes last, right before the real task in the prompt. ``name`` is the
    requested function name; the examples use it so that the model sees the exact
    contract it must fill. Returns an empty tuple when no entry scores at least
    ``EXAMPLE_THRESHOLD``.
    """
    matches = [m for m in search(task, limit=MAX_EXAMPLES) if m.score >= EXAMPLE_THRESHOLD]
    if len(matches) == MAX_EXAMPLES and matches[0].score - matches[1].score > SECOND_EXAMPLE_GAP:
        matches = matches[:1]
    logger.debug("worked examples for %r: %s", task, [m.to_dict() for m in matches])
    # Best last: small models copy the example nearest to the real task most closely.
    return tuple(example_for(match, name or "loss_fn", spec) for match in reversed(matches))


def reference_example(task: str, spec: InputSpec, name: str = "") -> WorkedExample | None:
    """Return the worked example of the entry that ``task`` clearly requests, if any.

    Unlike ``pick_examples``, which also shows loosely related entries, this returns an
    example only when the catalog would cross-check the candidate against that entry, so
    the example's code is safe to validate and offer as a candidate of its own.
    """
    match = match_reference(task, spec)
    if match is None:
        return None
    return example_for(match, name or "loss_fn", spec)
