"""A corpus of standard losses with realistic buggy variants, for measuring the checks.

Each case holds a correct implementation written from the published formula (mostly
through torch built-ins, independently of the catalog's references) and buggy variants
made by replacing one fragment of it. Every variant is labelled with its bug class.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUG_CLASSES", "Bug", "LossCase", "all_cases"]

BUG_CLASSES = {
    "reduction": "wrong reduction (sum for mean, mean over the wrong axis, batchmean)",
    "sign": "sign error",
    "log_zero": "log of zero or of a negative value (missing clamp or stable form)",
    "softmax_dim": "softmax or normalization over the wrong dimension",
    "broadcast": "(N,1) against (N,) broadcasting to (N,N)",
    "temperature": "missing or wrong temperature scaling (T squared, division by T)",
    "formula": "a wrong term or constant in the formula",
    "parameter": "a parameter ignored or applied to the wrong term",
    "detach": "the gradient cut off from an input",
}


@dataclass(frozen=True)
class Bug:
    """A buggy variant: ``old`` replaced by ``new`` in the correct source."""

    kind: str
    old: str
    new: str

    def apply(self, source: str) -> str:
        if source.count(self.old) != 1:
            raise ValueError(f"bug fragment {self.old!r} must occur exactly once")
        return source.replace(self.old, self.new)


@dataclass(frozen=True)
class LossCase:
    """One standard loss: its task, input spec, correct source and buggy variants."""

    key: str
    """The catalog entry this loss is an instance of."""
    task: str
    spec: str
    source: str
    """Defines ``loss_fn`` taking the spec's inputs positionally."""
    bugs: tuple[Bug, ...]

    def variants(self) -> list[tuple[str, str]]:
        """Return (bug class, source) for every buggy variant."""
        return [(bug.kind, bug.apply(self.source)) for bug in self.bugs]


def all_cases() -> list[LossCase]:
    from benchmarks.corpus import cases

    return list(cases.CASES)
