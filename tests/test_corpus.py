"""The corpus: correct losses match the catalog, and every variant really changes them."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.bench_corpus import summarize, validate
from benchmarks.corpus import BUG_CLASSES, LossCase, all_cases
from lossmagic.catalog import FAMILIES, get_entry
from lossmagic.catalog.adapt import map_inputs
from lossmagic.catalog.params import read_parameters
from lossmagic.sandbox import Sandbox
from lossmagic.spec import TRIAL_VARIANTS, make_trial, parse_spec

CASES = all_cases()


def _load(source: str):
    namespace: dict[str, object] = {}
    exec(compile(source, "corpus.py", "exec"), namespace)
    return namespace["loss_fn"]


def _values(case: LossCase, source: str, dtype: torch.dtype) -> list[float]:
    """Evaluate ``source`` on every trial kind, edge cases included."""
    spec = parse_spec(case.spec)
    fn = _load(source)
    values = []
    for seed, sizes in enumerate(spec.trial_sizes()):
        for variant in TRIAL_VARIANTS:
            trial = make_trial(spec, sizes, seed, variant, dtype=dtype)
            values.append(float(fn(*[t.detach() for t in trial.values()])))  # type: ignore[operator]
    return values


def _finite_runs(case: LossCase, source: str) -> list[bool]:
    """Return, per float32 trial, whether the value and every gradient are finite."""
    spec = parse_spec(case.spec)
    fn = _load(source)
    finite = []
    for seed, sizes in enumerate(spec.trial_sizes()):
        for variant, scale in [(v, 1.0) for v in TRIAL_VARIANTS] + [("ordinary", 1e3)]:
            trial = make_trial(spec, sizes, seed, variant)
            for item in spec.items:
                if item.is_float and item.domain is None and scale != 1.0:
                    trial[item.name] = (trial[item.name].detach() * scale).requires_grad_(True)
            inputs = list(trial.values())
            value = fn(*inputs)  # type: ignore[operator]
            value.backward()
            grads = [t.grad for t in inputs if t.grad is not None]
            finite.append(
                bool(torch.isfinite(value)) and all(bool(torch.isfinite(g).all()) for g in grads)
            )
    return finite


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-6 * (1 + abs(b))


def test_corpus_size() -> None:
    assert len(CASES) >= 25
    assert all(len(case.bugs) >= 3 for case in CASES)
    assert {bug.kind for case in CASES for bug in case.bugs} <= set(BUG_CLASSES)
    families = {get_entry(case.key).family for case in CASES}
    assert len(families) >= len(FAMILIES) - 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_correct_loss_matches_catalog_reference(case: LossCase) -> None:
    entry = get_entry(case.key)
    spec = parse_spec(case.spec)
    order = map_inputs(entry, spec)
    assert order is not None
    params = read_parameters(case.task, entry)
    fn = _load(case.source)
    for seed, sizes in enumerate(spec.trial_sizes()):
        trial = [t.detach() for t in make_trial(spec, sizes, seed, dtype=torch.float64).values()]
        expected = entry.compute(*[trial[i] for i in order], **params)
        torch.testing.assert_close(fn(*trial), expected, rtol=1e-6, atol=1e-6)  # type: ignore[operator]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_every_variant_differs_from_correct(case: LossCase) -> None:
    correct = _values(case, case.source, torch.float64)
    finite = _finite_runs(case, case.source)
    for kind, source in case.variants():
        assert source != case.source
        try:
            values = _values(case, source, torch.float64)
            single = _finite_runs(case, source)
        except (RuntimeError, ValueError, IndexError):
            continue  # a variant that raises differs by definition
        differs = any(not _same(a, b) for a, b in zip(values, correct, strict=True))
        # Log-of-zero bugs show only in float32 values or gradients, where softmax and
        # sigmoid saturate.
        overflows = single != finite
        assert differs or overflows, f"{case.key} {kind} variant equals the correct loss"


def test_cross_check_adds_rejections_in_sandbox() -> None:
    chosen = [c for c in CASES if c.key in ("distillation", "focal", "mse")]
    with Sandbox(timeout=60.0) as sandbox:
        verdicts = [
            validate(sandbox, case, bug, source, probes=False)
            for case in chosen
            for bug, source in [("correct", case.source), *case.variants()]
        ]
    summary = summarize(verdicts)
    assert summary["correct_accepted"] == summary["cases"] == 3
    assert summary["with_reference"] == 3
    assert summary["rejected_with_cross_check"] > summary["rejected_generic"]
    assert summary["classes"]["temperature"]["cross_check_only"] == 2
