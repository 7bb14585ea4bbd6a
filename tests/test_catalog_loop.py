"""The catalog inside the generate loop: worked examples and the cross-check."""

from __future__ import annotations

from pathlib import Path

from lossmagic import LoopSettings, generate_loss
from lossmagic.backends.scripted import ScriptedBackend

KD_INPUTS = "student:float[N,C] teacher:float[N,C]"
KD_TASK = "knowledge distillation loss with temperature 4"
KD_NO_SQUARE = (
    "\n    log_p = F.log_softmax(student / 4, dim=-1)"
    "\n    q = F.softmax(teacher / 4, dim=-1)"
    "\n    return F.kl_div(log_p, q, reduction='batchmean')\n```"
)
SETTINGS = LoopSettings(max_iters=1, candidates=1, tests=False, probes=False)


def test_disagreeing_candidate_is_not_selected(runs_dir: Path) -> None:
    backend = ScriptedBackend([KD_NO_SQUARE])
    result = generate_loss(
        KD_TASK, inputs=KD_INPUTS, backend=backend, runs_dir=runs_dir, settings=SETTINGS
    )

    model = result.iterations[0]
    reference = next(c for c in model.checks if c.name == "reference")
    assert reference.verdict == "fail"
    assert "ratio 0.0625" in reference.message
    assert model.decision == "not selected"
    assert result.validated, result.message
    assert "temperature ** 2" in result.code
    assert "written by lossmagic (worked example" in result.message


def test_prompt_shows_catalog_example(runs_dir: Path) -> None:
    backend = ScriptedBackend([KD_NO_SQUARE])
    generate_loss(KD_TASK, inputs=KD_INPUTS, backend=backend, runs_dir=runs_dir, settings=SETTINGS)

    messages = backend.requests[0].messages
    assert messages[1].role == "user"
    assert "temperature = 4.0" in messages[2].content
    assert "def loss_fn(student, teacher):" in messages[2].content


def test_retrieval_off_uses_no_catalog(runs_dir: Path) -> None:
    backend = ScriptedBackend([KD_NO_SQUARE])
    settings = LoopSettings(max_iters=1, candidates=1, tests=False, probes=False, retrieval=False)
    result = generate_loss(
        KD_TASK, inputs=KD_INPUTS, backend=backend, runs_dir=runs_dir, settings=settings
    )

    assert [m.role for m in backend.requests[0].messages] == ["system", "user"]
    assert len(result.iterations) == 1
    assert all(c.name != "reference" for c in result.iterations[0].checks)


def test_related_example_is_shown_but_not_offered(runs_dir: Path) -> None:
    task = "L1 loss with a dead zone: absolute errors below 0.1 cost nothing"
    plain_l1 = "\n    return (predictions - targets).abs().mean()\n```"
    backend = ScriptedBackend([plain_l1])
    result = generate_loss(
        task,
        inputs="predictions:float[N,1] targets:float[N,1]",
        backend=backend,
        runs_dir=runs_dir,
        settings=SETTINGS,
    )

    assert len(backend.requests[0].messages) > 2, "the related example was not shown"
    assert len(result.iterations) == 1
    assert not any("worked example" in note for note in result.iterations[0].extraction_notes)
