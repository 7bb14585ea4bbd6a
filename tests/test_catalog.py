"""The catalog's references: cross-checked against torch built-ins and on every trial."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from lossmagic.catalog import ENTRIES, FAMILIES, get_entry
from lossmagic.catalog.adapt import example_body, map_inputs
from lossmagic.spec import make_trial, parse_spec

Inputs = list[torch.Tensor]

# Entry key -> the same loss computed by torch built-ins, with the entry's defaults.
BUILTINS: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": lambda z, y: F.cross_entropy(z, y),
    "label_smoothing": lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
    "bce_with_logits": lambda z, y: F.binary_cross_entropy_with_logits(z, y),
    "bce": lambda p, y: F.binary_cross_entropy(p, y),
    "nll": lambda lp, y: F.nll_loss(lp, y),
    "soft_target_cross_entropy": lambda z, q: F.cross_entropy(z, q),
    "multi_class_hinge": lambda z, y: F.multi_margin_loss(z, y),
    "soft_margin": lambda s, y: F.soft_margin_loss(s, y),
    "multilabel_soft_margin": lambda z, y: F.multilabel_soft_margin_loss(z, y),
    "mse": lambda p, t: F.mse_loss(p, t),
    "mae": lambda p, t: F.l1_loss(p, t),
    "huber": lambda p, t: F.huber_loss(p, t, delta=1.0),
    "smooth_l1": lambda p, t: F.smooth_l1_loss(p, t, beta=1.0),
    "gaussian_nll": lambda m, t, v: F.gaussian_nll_loss(m, t, v),
    "poisson_nll": lambda r, c: F.poisson_nll_loss(r, c, log_input=True),
    "cosine_similarity": lambda p, t: (1 - F.cosine_similarity(p, t, dim=-1)).mean(),
    "triplet": lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=1.0),
    "cosine_embedding": lambda a, b, y: F.cosine_embedding_loss(a, b, y),
    "hinge_embedding": lambda x, y: F.hinge_embedding_loss(x, y),
    "margin_ranking": lambda a, b, y: F.margin_ranking_loss(a, b, y),
    "distillation": lambda s, t: (
        F.kl_div(
            F.log_softmax(s / 4, -1),
            F.log_softmax(t / 4, -1),
            reduction="batchmean",
            log_target=True,
        )
        * 16
    ),
    "kl_divergence": lambda z, q: F.kl_div(F.log_softmax(z, -1), q, reduction="batchmean"),
    "gan_generator": lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)),
    "gan_discriminator": lambda r, f: (
        F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
        + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    ),
    "ranknet": lambda a, b, p: F.binary_cross_entropy_with_logits(a - b, p),
    "listnet": lambda s, r: F.cross_entropy(s, F.softmax(r, -1)),
}


# torch's cosine embedding loss adds 1e-12 to squared norms, which matters only for
# vectors of norm about 1e-6; the reference follows F.cosine_similarity there instead.
NO_TINY_TRIALS = {"cosine_embedding"}


def _trials(key: str, spec_text: str) -> list[dict[str, torch.Tensor]]:
    spec = parse_spec(spec_text)
    variants = (
        ("ordinary", "one_class") if key in NO_TINY_TRIALS else ("ordinary", "one_class", "tiny")
    )
    return [
        make_trial(spec, sizes, seed, variant, dtype=torch.float64)
        for seed, sizes in enumerate(spec.trial_sizes())
        for variant in variants
    ]


def test_catalog_size_and_families() -> None:
    assert len(ENTRIES) >= 30
    assert {entry.family for entry in ENTRIES} == set(FAMILIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.key)
def test_entry_is_complete(entry) -> None:
    assert entry.names
    assert entry.description
    doc = entry.reference.__doc__ or ""
    assert any(word in doc for word in ("Source", "(")), f"{entry.key} names no source"
    parse_spec(entry.spec)


@pytest.mark.parametrize("key", sorted(BUILTINS))
def test_reference_matches_builtin(key: str) -> None:
    entry = get_entry(key)
    for trial in _trials(key, entry.spec):
        inputs = [t.detach() for t in trial.values()]
        expected = BUILTINS[key](*inputs)
        actual = entry.compute(*inputs)
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def test_nt_xent_matches_explicit_formula() -> None:
    entry = get_entry("nt_xent")
    z1, z2 = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    total = 0.0
    for i in range(10):
        j = (i + 5) % 10
        sims = [(z[i] @ z[k]) / 0.5 for k in range(10) if k != i]
        total += float(-(z[i] @ z[j] / 0.5) + torch.logsumexp(torch.stack(sims), 0))
    assert float(entry.compute(z1, z2)) == pytest.approx(total / 10, rel=1e-9)


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, targets = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 4, (6,))
    focal = get_entry("focal").compute(logits, targets, gamma=0.0)
    torch.testing.assert_close(focal, F.cross_entropy(logits, targets))


def test_sigmoid_focal_with_gamma_zero_is_weighted_bce() -> None:
    logits = torch.randn(9, dtype=torch.float64)
    targets = torch.randint(0, 2, (9,)).double()
    weights = 0.5 * targets + 0.5 * (1 - targets)
    expected = (
        weights * F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    ).mean()
    actual = get_entry("sigmoid_focal").compute(logits, targets, gamma=0.0, alpha=0.5)
    torch.testing.assert_close(actual, expected)


def test_distillation_with_labels_weights_its_terms() -> None:
    student, teacher = (
        torch.randn(4, 3, dtype=torch.float64),
        torch.randn(4, 3, dtype=torch.float64),
    )
    targets = torch.tensor([0, 2, 1, 1])
    combined = get_entry("distillation_with_labels").compute(student, teacher, targets, alpha=0.3)
    soft = get_entry("distillation").compute(student, teacher)
    torch.testing.assert_close(combined, 0.3 * soft + 0.7 * F.cross_entropy(student, targets))


def test_dice_of_perfect_mask_is_near_zero() -> None:
    masks = torch.randint(0, 2, (2, 1, 4, 4)).double()
    logits = (masks * 2 - 1) * 50
    assert float(get_entry("dice").compute(logits, masks)) < 1e-6
    assert float(get_entry("jaccard").compute(logits, masks)) < 1e-6
    assert float(get_entry("tversky").compute(logits, masks)) < 1e-6


def test_vae_elbo_is_reconstruction_plus_kl() -> None:
    recon, x = torch.randn(3, 5, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    mu, logvar = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(recon, x, reduction="sum") / 3
    kl = get_entry("vae_kl").compute(mu, logvar)
    torch.testing.assert_close(get_entry("vae_elbo").compute(recon, x, mu, logvar), bce + kl)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.key)
def test_example_body_runs_like_reference(entry) -> None:
    spec = entry.input_spec
    renamed = [f"input_{index}" for index in range(len(spec.items))]
    body = example_body(entry, renamed, {})
    assert body is not None
    namespace: dict[str, object] = {}
    header = "import math\nimport torch\nimport torch.nn.functional as F\n\n"
    source = f"{header}def fn({', '.join(renamed)}):\n{body}\n"
    exec(compile(source, "example.py", "exec"), namespace)
    trial = make_trial(spec, spec.trial_sizes()[0], 0, dtype=torch.float64)
    inputs = [t.detach() for t in trial.values()]
    torch.testing.assert_close(namespace["fn"](*inputs), entry.compute(*inputs))  # type: ignore[operator]


def test_map_inputs_reorders_by_dtype_and_role() -> None:
    focal = get_entry("focal")
    assert map_inputs(focal, parse_spec("labels:long[B]<K out:float[B,K]")) == (1, 0)
    quantile = get_entry("quantile")
    assert map_inputs(quantile, parse_spec("y:float[N,1] pred:float[N,1]")) == (1, 0)


def test_map_inputs_rejects_unfit_specs() -> None:
    assert map_inputs(get_entry("focal"), parse_spec("a:float[N,C] b:float[N,C]")) is None
    assert map_inputs(get_entry("mse"), parse_spec("a:float[N,1] b:float[N]")) is None
    assert map_inputs(get_entry("triplet"), parse_spec("a:float[N,D] b:float[N,D]")) is None


def test_example_body_renames_clashing_locals() -> None:
    body = example_body(get_entry("distillation"), ["student", "teacher"])
    assert body is not None
    assert "teacher_term = torch.log_softmax(teacher / temperature" in body
    focal = example_body(get_entry("focal"), ["gamma", "alpha"], {"gamma": 3.0})
    assert focal is not None
    assert "gamma_term = 3.0" in focal
    assert "torch.log_softmax(gamma, dim=-1)" in focal
    assert example_body(get_entry("cross_entropy"), ["torch", "y"]) is None
