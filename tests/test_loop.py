"""The loop with the scripted backend: routed repair, rejection, resampling, candidates.

A scripted response continues the request's pre-fill. The default strategy first requests
generated tests (the pre-fill ends on ``def test_``), then candidates.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lossmagic import LoopSettings, generate_loss
from lossmagic.backends.scripted import ScriptedBackend
from lossmagic.exceptions import ConfigurationError, InputSpecError
from lossmagic.strategies.common import TESTS_FILENAME

from .conftest import CROSS_ENTROPY_BODY, MSE_BODY, run_cli

NON_SCALAR = "\n    return F.cross_entropy(logits, targets, reduction='none')\n```"
SHAPE_BUG = "\n    return (logits - targets).mean()\n```"
NAN_BUG = (
    "\n    return (logits.softmax(-1) * 0.0 / 0.0).sum() + F.cross_entropy(logits, targets)\n```"
)
OTHER_NAN_BUG = "\n    return F.cross_entropy(logits, targets) * float('nan')\n```"
LONG_CROSS_ENTROPY = (
    "\n    log_probs = F.log_softmax(logits, dim=-1)\n"
    "    picked = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)\n"
    "    return -picked.mean()\n```"
)
NO_CODE = " I cannot help with that."
NO_TESTS = "nothing\n```"
MAE_BODY = "\n    return (predictions - targets).abs().mean()\n```"
MSE_SPEC = "predictions:float[N,1] targets:float[N,1]"
NO_CATALOG = LoopSettings(retrieval=False)
"""Without the catalog: no worked-example candidates and no reference cross-check."""

KNOWN_VALUE_TESTS = (
    "known_value():\n"
    "    predictions = torch.tensor([[1.0], [3.0]])\n"
    "    targets = torch.tensor([[0.0], [1.0]])\n"
    "    assert abs(loss_fn(predictions, targets).item() - 2.5) < 1e-4\n\n\n"
    "def test_shape():\n"
    "    predictions = torch.randn(3, 1)\n"
    "    assert loss_fn(predictions, predictions).shape == (1,)\n```"
)


def test_fails_then_repairs_with_routed_instruction(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, SHAPE_BUG, CROSS_ENTROPY_BODY])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)

    assert result.status == "validated", result.message
    assert [i.kind for i in result.iterations] == ["generate", "repair"]
    assert result.iterations[0].error is not None
    assert result.iterations[0].error["class"] == "shape_or_broadcast"
    assert result.iterations[0].decision == "repair: shape_or_broadcast"

    repair_prompt = backend.requests[2].messages[-1].content
    assert "(logits - targets).mean()" in repair_prompt
    assert "[shape_or_broadcast]" in repair_prompt
    assert "Failing line 5: return (logits - targets).mean()" in repair_prompt
    assert '"tensors at the failing line": {"logits": "(4, 5) float32"' in repair_prompt
    assert "The shapes below do not fit together" in repair_prompt
    assert "cross entropy" in repair_prompt


def test_non_scalar_fixed_without_model(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NON_SCALAR])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)

    assert result.status == "validated", result.message
    assert len(backend.requests) == 2
    first, fixed = result.iterations
    assert first.error is not None
    assert first.error["class"] == "non_scalar"
    assert fixed.extraction_notes == ["mechanical repair of iteration 1 (non_scalar)"]
    assert fixed.completion_tokens == 0
    assert "reduction='none').mean()" in result.code


def test_prompts_are_built_fresh_each_round(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, SHAPE_BUG, NAN_BUG, CROSS_ENTROPY_BODY])
    generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)
    lengths = [len(r.messages) for r in backend.requests[1:]]
    assert lengths[0] == lengths[1] == lengths[2]
    assert "(logits - targets)" not in backend.requests[3].messages[-1].content


def test_repair_that_breaks_a_check_is_rejected(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NAN_BUG, SHAPE_BUG, CROSS_ENTROPY_BODY])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)

    assert result.status == "validated", result.message
    second = result.iterations[1]
    assert second.kind == "repair"
    assert second.decision.startswith("reject: the repair breaks")
    assert "runs" in second.decision
    # The rejected repair leaves the best candidate so far; the next round starts fresh.
    assert result.iterations[2].kind == "resample"
    assert "0.0 / 0.0" not in backend.requests[3].messages[-1].content


def test_worked_example_becomes_a_candidate(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NO_CODE])
    result = generate_loss(
        "mean squared error", inputs=MSE_SPEC, backend=backend, runs_dir=runs_dir
    )

    assert result.status == "validated", result.message
    assert len(backend.requests) == 2
    example = result.iterations[-1]
    assert example.extraction_notes[0].startswith("worked example: mean squared error")
    assert example.completion_tokens == 0
    assert example.decision == "accept"


def test_repeated_error_class_resamples(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NAN_BUG, OTHER_NAN_BUG, CROSS_ENTROPY_BODY])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)

    assert result.status == "validated", result.message
    assert [i.kind for i in result.iterations] == ["generate", "repair", "resample"]
    assert result.iterations[1].decision == "resample: nan_or_inf failed again"


def test_repair_repeating_its_parent_resamples(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, SHAPE_BUG, SHAPE_BUG, CROSS_ENTROPY_BODY])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)

    assert result.status == "validated", result.message
    assert [i.kind for i in result.iterations] == ["generate", "repair", "resample"]
    assert result.iterations[1].decision == "resample: the repair repeated the failing code"


def test_first_candidate_is_greedy(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, SHAPE_BUG, CROSS_ENTROPY_BODY])
    generate_loss("cross entropy", backend=backend, runs_dir=runs_dir, settings=NO_CATALOG)
    assert [r.temperature for r in backend.requests[1:]] == [0.0, 0.7]

    batched = ScriptedBackend([NO_TESTS, CROSS_ENTROPY_BODY, CROSS_ENTROPY_BODY])
    generate_loss(
        "cross entropy",
        backend=batched,
        runs_dir=runs_dir,
        settings=replace(NO_CATALOG, candidates=2),
    )
    assert batched.requests[1].temperature == 0.7


def test_candidates_sampled_in_one_call(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NON_SCALAR, LONG_CROSS_ENTROPY, CROSS_ENTROPY_BODY])
    result = generate_loss(
        "cross entropy",
        backend=backend,
        runs_dir=runs_dir,
        settings=replace(NO_CATALOG, candidates=3),
    )

    assert result.status == "validated", result.message
    assert [r.n for r in backend.requests] == [1, 3]
    # Three sampled candidates, and the mechanical repair of the non-scalar one.
    assert len(result.iterations) == 4
    # Every correct candidate passes every check; the simplest one wins.
    assert "F.cross_entropy(logits, targets)\n" in result.code
    decisions = [i.decision for i in result.iterations]
    assert decisions.count("accept") == 1
    assert decisions.count("not selected") == 3


def test_contract_contradicting_test_is_dropped(runs_dir: Path) -> None:
    backend = ScriptedBackend([KNOWN_VALUE_TESTS, MSE_BODY])
    result = generate_loss(
        "mean squared error", inputs=MSE_SPEC, backend=backend, runs_dir=runs_dir
    )

    assert result.status == "validated", result.message
    checks = {c.name: c for c in result.iterations[0].checks}
    assert checks["test:test_known_value"].passed
    shape = checks["test:test_shape"]
    assert shape.failed
    assert "0-dim" in shape.evidence["test_fault"]
    assert "# got torch.Size([])" in shape.message

    saved = json.loads((result.record_path.parent / TESTS_FILENAME).read_text())
    assert [t["name"] for t in saved[0]["tests"]] == ["test_known_value", "test_shape"]


def test_failed_test_routes_repair_with_value(runs_dir: Path) -> None:
    backend = ScriptedBackend([KNOWN_VALUE_TESTS, MAE_BODY, "loss", MSE_BODY])
    result = generate_loss(
        "mean squared error",
        inputs=MSE_SPEC,
        backend=backend,
        runs_dir=runs_dir,
        settings=NO_CATALOG,
    )

    assert result.status == "validated", result.message
    assert result.iterations[0].decision == "repair: generated test failed"
    assert [i.kind for i in result.iterations] == ["generate", "repair"]
    repair_prompt = backend.requests[3].messages[-1].content
    assert "assert abs(loss_fn(predictions, targets).item() - 2.5) < 1e-4" in repair_prompt
    assert "# got 1.0" in repair_prompt
    assert "(predictions - targets) ** 2" in result.code


def test_blamed_test_with_passing_checks_is_dropped(runs_dir: Path) -> None:
    backend = ScriptedBackend([KNOWN_VALUE_TESTS, MAE_BODY, "test"])
    result = generate_loss(
        "mean absolute error",
        inputs=MSE_SPEC,
        backend=backend,
        runs_dir=runs_dir,
        settings=NO_CATALOG,
    )

    assert result.status == "validated", result.message
    assert len(result.iterations) == 1
    assert "(predictions - targets).abs()" in result.code


def test_never_validates_is_failed_with_full_record(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NAN_BUG, NO_CODE, SHAPE_BUG])
    result = generate_loss(
        "cross entropy",
        backend=backend,
        runs_dir=runs_dir,
        settings=replace(NO_CATALOG, max_iters=3),
    )

    assert result.status == "failed"
    assert not result.validated
    assert len(result.iterations) == 3
    assert result.iterations[1].kind == "repair"

    record = json.loads(result.record_path.read_text())
    assert record["status"] == "failed"
    assert [i["raw_output"] for i in record["iterations"]] == [NAN_BUG, NO_CODE, SHAPE_BUG]
    assert record["iterations"][1]["error"]["check"] == "extraction"
    assert not (result.record_path.parent / "loss.py").exists()
    assert (result.record_path.parent / "candidates" / "iteration-1.py").exists()
    with pytest.raises(ConfigurationError):
        result.load()


def test_model_that_never_emits_code(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, NO_CODE, NO_CODE])
    result = generate_loss(
        "cross entropy",
        backend=backend,
        runs_dir=runs_dir,
        settings=replace(NO_CATALOG, max_iters=2),
    )
    assert result.status == "failed"
    assert "never produced a usable definition of 'loss_fn'" in result.message
    assert [i.kind for i in result.iterations] == ["generate", "resample"]


def test_validated_result_loads_exact_source(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_TESTS, MSE_BODY])
    result = generate_loss(
        "mse", inputs=MSE_SPEC, backend=backend, runs_dir=runs_dir, settings=NO_CATALOG
    )
    loss = result.load()

    import inspect

    import torch

    assert inspect.getsource(loss) in result.code
    assert float(loss(torch.ones(2, 1), torch.zeros(2, 1))) == 1.0
    assert (result.record_path.parent / "loss.py").read_text() == result.code


def test_baseline_accepts_on_generated_tests_only(runs_dir: Path) -> None:
    lenient_tests = (
        "runs():\n"
        "    logits = torch.randn(4, 3)\n"
        "    targets = torch.tensor([0, 1, 2, 0])\n"
        "    assert loss_fn(logits, targets).sum() > 0\n```"
    )
    backend = ScriptedBackend([lenient_tests, NON_SCALAR])
    result = generate_loss(
        "cross entropy",
        backend=backend,
        runs_dir=runs_dir,
        settings=LoopSettings(strategy="baseline", max_iters=9),
    )

    # The baseline design has no contract: a non-scalar loss passes its lenient test.
    assert result.status == "validated"
    assert "reduction='none'" in result.code
    assert all("Worked" not in m.content for m in backend.requests[1].messages)


def test_baseline_blame_routes_the_next_step(runs_dir: Path) -> None:
    responses = [KNOWN_VALUE_TESTS, MAE_BODY, "loss", MSE_BODY, "test", NO_TESTS]
    backend = ScriptedBackend([*responses, MSE_BODY, KNOWN_VALUE_TESTS])
    result = generate_loss(
        "mean squared error",
        inputs=MSE_SPEC,
        backend=backend,
        runs_dir=runs_dir,
        settings=LoopSettings(strategy="baseline", max_iters=3),
    )

    decisions = [i.decision for i in result.iterations]
    assert decisions == [
        "repair: the model blamed the loss",
        "repair: the new tests failed too",
        "repair: no test ran, and the new tests fail",
    ]
    # The baseline cannot tell that test_shape contradicts the contract, so it never accepts.
    assert result.status == "failed"


def test_baseline_runs_three_outer_rounds(runs_dir: Path) -> None:
    responses = [NO_TESTS, NO_CODE, NO_CODE, NO_CODE] * 3
    backend = ScriptedBackend(responses)
    result = generate_loss(
        "cross entropy",
        backend=backend,
        runs_dir=runs_dir,
        settings=LoopSettings(strategy="baseline", max_iters=9),
    )
    assert result.status == "failed"
    assert len(result.iterations) == 9
    assert sum(1 for r in backend.requests if r.prefill.endswith("def test_")) == 3


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"task": "  "}, ConfigurationError),
        ({"task": "mse", "inputs": "x:floot[N]"}, InputSpecError),
        ({"task": "mse", "name": "not a name"}, ConfigurationError),
        ({"task": "mse", "backend": "nonexistent"}, ConfigurationError),
        ({"task": "mse", "backend": "transformers", "model": "/nonexistent/model"}, Exception),
    ],
)
def test_bad_input_raises_clear_error(
    kwargs: dict[str, str], error: type[Exception], runs_dir: Path
) -> None:
    with pytest.raises(error) as info:
        generate_loss(runs_dir=runs_dir, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_unknown_strategy_is_rejected(runs_dir: Path) -> None:
    backend = ScriptedBackend([])
    with pytest.raises(ConfigurationError, match="unknown strategy 'fancy'"):
        generate_loss(
            "mse", backend=backend, runs_dir=runs_dir, settings=LoopSettings(strategy="fancy")
        )


def test_cli_exit_codes_with_scripted_backend(tmp_path: Path, responses_file) -> None:
    good = responses_file([NO_TESTS, CROSS_ENTROPY_BODY])
    done = run_cli(
        "generate",
        "cross entropy",
        "--backend",
        "scripted",
        "--model",
        str(good),
        "--no-retrieval",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "validated"
    assert set(summary) >= {"status", "code", "iterations", "model", "seconds", "record_path"}
    assert Path(summary["record_path"]).is_file()

    bad = responses_file([NO_TESTS, NAN_BUG])
    done = run_cli(
        "generate",
        "cross entropy",
        "--backend",
        "scripted",
        "--model",
        str(bad),
        "--max-iters",
        "1",
        "--no-retrieval",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["generate", "  "], "the task is empty"),
        (["generate", "mse", "--backend", "nope"], "unknown backend 'nope'"),
        (["generate", "mse", "--inputs", "x:float[N"], "Invalid input spec item 'x:float[N'"),
        (
            ["generate", "mse", "--backend", "transformers", "--model", "/no/such/model"],
            "could not load model",
        ),
        (["generate", "mse", "--max-iters", "0"], "Invalid value"),
        (["generate", "mse", "--strategy", "fancy"], "unknown strategy 'fancy'"),
        (["generate", "mse", "--candidates", "0"], "Invalid value"),
        (["generate", "mse", "--inputs", ""], "the spec is empty"),
        (["generate", "mse", "--inputs", "class:float[N] b:float[N]"], "is a Python keyword"),
        (["generate", "mse", "--name", "import"], "invalid function name 'import'"),
        (["generate", "mse", "--out", "/proc/no/such/loss.py"], "cannot be written"),
        (["generate", "mse", "--runs-dir", "a-file.txt"], "is a file"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    (tmp_path / "a-file.txt").write_text("not a folder")
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
