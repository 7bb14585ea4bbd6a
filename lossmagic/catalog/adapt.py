"""Fitting a catalog entry to a requested input spec: input order and example source.

A requested spec may name and order its inputs differently from the entry. ``map_inputs``
finds which requested input plays which role of the reference; ``example_body`` rewrites
the reference's source for the requested names, with the parameters as constants.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap

from lossmagic.catalog.entry import CatalogEntry
from lossmagic.spec import InputItem, InputSpec

__all__ = ["example_body", "map_inputs"]

_PREDICTION_WORDS = frozenset(
    [
        "pred",
        "preds",
        "prediction",
        "predictions",
        "output",
        "outputs",
        "logits",
        "logit",
        "scores",
        "score",
        "input",
        "inputs",
        "yhat",
        "y_pred",
        "student",
        "probs",
        "probabilities",
        "x",
        "estimate",
        "estimates",
    ]
)
_TARGET_WORDS = frozenset(
    [
        "target",
        "targets",
        "label",
        "labels",
        "y",
        "gt",
        "truth",
        "true",
        "ground",
        "mask",
        "masks",
        "teacher",
        "y_true",
        "reference",
        "classes",
        "class",
    ]
)


# Domains outside which a reference is undefined (log of a negative probability, say), so
# an input without the domain cannot fill the role.
_REQUIRED_DOMAINS = frozenset({"unit", "prob", "positive"})


def _role(name: str) -> str | None:
    parts = set(re.split(r"[_\W]+", name.lower())) | {name.lower()}
    if parts & _TARGET_WORDS:
        return "target"
    if parts & _PREDICTION_WORDS:
        return "prediction"
    return None


def _compatible(expected: InputItem, requested: InputItem, elementwise: bool) -> bool:
    if expected.is_float != requested.is_float:
        return False
    if expected.bound is not None and requested.bound is None:
        return False
    if (
        expected.domain is not None
        and requested.domain is not None
        and expected.domain != requested.domain
    ):
        return False
    if expected.domain in _REQUIRED_DOMAINS and requested.domain is None:
        return False
    return elementwise or len(expected.dims) == len(requested.dims)


def map_inputs(entry: CatalogEntry, spec: InputSpec) -> tuple[int, ...] | None:
    """Return, for each reference input, the position of the requested input that fills it.

    Returns None when the requested inputs cannot play the reference's roles: a different
    count, a float where an integer is needed, an incompatible or missing domain, another
    rank, or (for an elementwise entry) inputs whose shapes differ from one another.
    """
    expected = entry.input_spec.items
    requested = spec.items
    if len(expected) != len(requested):
        return None
    if entry.elementwise and len({item.dims for item in requested}) > 1:
        return None

    best: tuple[int, ...] | None = None
    best_score = -1
    for order in itertools.permutations(range(len(requested))):
        pairs = [(expected[i], requested[j]) for i, j in enumerate(order)]
        if not all(_compatible(w, g, entry.elementwise) for w, g in pairs):
            continue
        score = sum(
            2
            if w.name == g.name
            else int(_role(w.name) is not None and _role(w.name) == _role(g.name))
            for w, g in pairs
        )
        if order == tuple(range(len(requested))):
            score += 1
        if score > best_score:
            best, best_score = order, score
    return best


_MODULES = frozenset({"torch", "F", "math"})


def _fresh_name(base: str, taken: set[str]) -> str:
    name, number = base, 2
    while name in taken:
        name, number = f"{base}{number}", number + 1
    return name


def example_body(
    entry: CatalogEntry, names: list[str], params: dict[str, float] | None = None
) -> str | None:
    """Return the reference's body for inputs called ``names``, parameters set as constants.

    ``names`` gives the new name of each reference input in order. A local variable of
    the body that has one of the new names is renamed. Returns None when a new name is
    one of the modules the body uses (``torch``, ``F``, ``math``).
    """
    source = textwrap.dedent(inspect.getsource(entry.reference))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)

    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]

    arguments = [a.arg for a in function.args.args]
    renames = dict(zip(arguments[: len(names)], names, strict=True))
    used = {node.id for node in ast.walk(function) if isinstance(node, ast.Name)}
    if set(names) & _MODULES & used:
        return None
    for clash in sorted((set(names) & used) - set(arguments[: len(names)])):
        renames[clash] = _fresh_name(f"{clash}_term", used | set(names))

    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Name) and node.id in renames:
            node.id = renames[node.id]

    values = {**entry.defaults, **(params or {})}
    parameters = [name for name in arguments[len(names) :] if name in values]
    lines = [f"{renames.get(name, name)} = {values[name]!r}" for name in parameters]
    lines += [ast.unparse(statement) for statement in body]
    return textwrap.indent("\n".join(lines), "    ")
