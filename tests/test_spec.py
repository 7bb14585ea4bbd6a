from __future__ import annotations

import pytest
import torch

from lossmagic.exceptions import InputSpecError
from lossmagic.spec import DEFAULT_SPEC, TRIAL_VARIANTS, make_trial, parse_spec


def test_default_spec_is_classification() -> None:
    spec = parse_spec(None)
    assert str(spec) == DEFAULT_SPEC
    assert spec.names == ["logits", "targets"]


@pytest.mark.parametrize(
    "text",
    [
        "logits:float[N,C] targets:long[N]<C",
        "pred:float[N,1,H,W] mask:float[N,1,H,W]~binary",
        "anchor:float[N,D] positive:float[N,D] negative:float[N,D]",
        "x1:float[N] x2:float[N] y:float[N]~sign",
        "logits:float[N,4] targets:long[N]<5",
        "p:float[N,C]~prob q:float[N,C]~prob",
        "scale:float[]~positive",
    ],
)
def test_spec_round_trips(text: str) -> None:
    assert str(parse_spec(text)) == text


@pytest.mark.parametrize(
    ("text", "item", "reason"),
    [
        ("logits:float[N,C] targets:lng[N]", "targets:lng[N]", "unknown dtype"),
        ("logits:float[N,C targets:long[N]", "logits:float[N,C", "expected NAME:DTYPE"),
        ("x:float[N]<C", "x:float[N]<C", "only to long or int"),
        ("y:long[N]~prob", "y:long[N]~prob", "only to float"),
        ("x:float[N]~weird", "x:float[N]~weird", "unknown domain"),
        ("x:float[N,0]", "x:float[N,0]", "at least 1"),
        ("x:float[N] x:float[N]", "x", "more than once"),
    ],
)
def test_spec_errors_name_the_item(text: str, item: str, reason: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse_spec(text)
    assert info.value.item == item
    assert reason in str(info.value)


def test_trials_bind_symbols_and_include_batch_of_one() -> None:
    spec = parse_spec("logits:float[N,C] targets:long[N]<C")
    sizes = spec.trial_sizes()
    assert {s["N"] for s in sizes} >= {1}
    for index, size in enumerate(sizes):
        trial = make_trial(spec, size, seed=index)
        assert trial["logits"].shape == (size["N"], size["C"])
        assert trial["targets"].shape == (size["N"],)
        assert int(trial["targets"].max()) < size["C"]
        assert trial["logits"].requires_grad


@pytest.mark.parametrize("variant", TRIAL_VARIANTS)
def test_trial_values_stay_in_domain(variant: str) -> None:
    spec = parse_spec(
        "p:float[N,C]~prob u:float[N]~unit b:float[N]~binary s:float[N]~sign z:float[N]~positive"
    )
    trial = make_trial(spec, {"N": 6, "C": 3}, seed=1, variant=variant)
    assert torch.allclose(trial["p"].sum(-1), torch.ones(6), atol=1e-5)
    assert bool((trial["p"] >= 0).all())
    assert bool(((trial["u"] >= 0) & (trial["u"] <= 1)).all())
    assert set(trial["b"].unique().tolist()) <= {0.0, 1.0}
    assert set(trial["s"].unique().tolist()) <= {-1.0, 1.0}
    assert bool((trial["z"] > 0).all())


def test_trials_are_reproducible() -> None:
    spec = parse_spec("a:float[N,D] b:float[N,D]")
    first = make_trial(spec, {"N": 3, "D": 4}, seed=7)
    second = make_trial(spec, {"N": 3, "D": 4}, seed=7)
    assert torch.equal(first["a"], second["a"])
