"""The loop with the scripted backend: deterministic repair and failure paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lossmagic import LoopSettings, generate_loss
from lossmagic.backends.scripted import ScriptedBackend
from lossmagic.exceptions import ConfigurationError, InputSpecError

from .conftest import CROSS_ENTROPY_BODY, MSE_BODY, run_cli

NON_SCALAR = "\n    return F.cross_entropy(logits, targets, reduction='none')\n```"
SHAPE_BUG = "\n    return (logits - targets).mean()\n```"
NO_CODE = " I cannot help with that."


def test_fails_twice_then_repairs(runs_dir: Path) -> None:
    backend = ScriptedBackend([NON_SCALAR, SHAPE_BUG, CROSS_ENTROPY_BODY])
    result = generate_loss("cross entropy", backend=backend, runs_dir=runs_dir)

    assert result.status == "validated", result.message
    assert [i.kind for i in result.iterations] == ["generate", "repair", "repair"]
    assert result.iterations[0].error is not None
    assert result.iterations[0].error["class"] == "non_scalar"
    assert result.iterations[1].error is not None
    assert result.iterations[1].error["class"] == "shape_or_broadcast"
    assert result.iterations[2].error is None

    repair_prompt = backend.requests[1].messages[-1].content
    assert "reduction='none'" in repair_prompt
    assert "non_scalar" in repair_prompt
    assert "cross entropy" in repair_prompt


def test_prompts_are_built_fresh_each_iteration(runs_dir: Path) -> None:
    backend = ScriptedBackend([NON_SCALAR, SHAPE_BUG, CROSS_ENTROPY_BODY])
    generate_loss("cross entropy", backend=backend, runs_dir=runs_dir)
    lengths = [len(r.messages) for r in backend.requests]
    assert lengths[0] == lengths[1] == lengths[2]
    assert "reduction='none'" not in backend.requests[2].messages[-1].content


def test_never_validates_is_failed_with_full_record(runs_dir: Path) -> None:
    backend = ScriptedBackend([NON_SCALAR, NO_CODE, SHAPE_BUG])
    result = generate_loss(
        "cross entropy", backend=backend, runs_dir=runs_dir, settings=LoopSettings(max_iters=3)
    )

    assert result.status == "failed"
    assert not result.validated
    assert len(result.iterations) == 3
    assert result.iterations[1].kind == "repair"
    assert result.iterations[2].kind == "resample"

    record = json.loads(result.record_path.read_text())
    assert record["status"] == "failed"
    assert [i["raw_output"] for i in record["iterations"]] == [NON_SCALAR, NO_CODE, SHAPE_BUG]
    assert record["iterations"][1]["error"]["check"] == "extraction"
    assert not (result.record_path.parent / "loss.py").exists()
    assert (result.record_path.parent / "candidates" / "iteration-1.py").exists()
    with pytest.raises(ConfigurationError):
        result.load()


def test_model_that_never_emits_code(runs_dir: Path) -> None:
    backend = ScriptedBackend([NO_CODE, NO_CODE])
    result = generate_loss(
        "cross entropy", backend=backend, runs_dir=runs_dir, settings=LoopSettings(max_iters=2)
    )
    assert result.status == "failed"
    assert "never produced a usable definition of 'loss_fn'" in result.message


def test_validated_result_loads_exact_source(runs_dir: Path) -> None:
    backend = ScriptedBackend([MSE_BODY])
    result = generate_loss(
        "mse",
        inputs="predictions:float[N,1] targets:float[N,1]",
        backend=backend,
        runs_dir=runs_dir,
    )
    loss = result.load()

    import inspect

    import torch

    assert inspect.getsource(loss) in result.code
    assert float(loss(torch.ones(2, 1), torch.zeros(2, 1))) == 1.0
    assert (result.record_path.parent / "loss.py").read_text() == result.code


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


def test_cli_exit_codes_with_scripted_backend(tmp_path: Path, responses_file) -> None:
    good = responses_file([CROSS_ENTROPY_BODY])
    done = run_cli(
        "generate",
        "cross entropy",
        "--backend",
        "scripted",
        "--model",
        str(good),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "validated"
    assert set(summary) >= {"status", "code", "iterations", "model", "seconds", "record_path"}
    assert Path(summary["record_path"]).is_file()

    bad = responses_file([NON_SCALAR])
    done = run_cli(
        "generate",
        "cross entropy",
        "--backend",
        "scripted",
        "--model",
        str(bad),
        "--max-iters",
        "1",
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
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr, done.stderr
