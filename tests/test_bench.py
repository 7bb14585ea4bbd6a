"""``lossmagic bench``: suite loading, reference comparison, summaries and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lossmagic.bench import compare_to_reference, load_suite
from lossmagic.exceptions import ConfigurationError
from lossmagic.sandbox import Sandbox

from .conftest import MSE_BODY, REPO, run_cli

SUITE = REPO / "benchmarks" / "suite" / "suite.json"
MSE_SPEC = "predictions:float[N,1] targets:float[N,1]"
HEADER = "import torch\n\n\ndef loss_fn(predictions, targets):\n"
MSE = HEADER + "    return ((predictions - targets) ** 2).mean()\n"
MAE = HEADER + "    return (predictions - targets).abs().mean()\n"
NO_TESTS = "nothing\n```"


def write_suite(folder: Path, entries: object, reference: str = MSE) -> Path:
    (folder / "mse.py").write_text(reference)
    path = folder / "suite.json"
    path.write_text(json.dumps(entries))
    return path


def test_shipped_suite_loads() -> None:
    tasks = load_suite(SUITE)
    assert len(tasks) >= 20
    assert all(task.reference for task in tasks)
    assert len({task.id for task in tasks}) == len(tasks)


def test_shipped_references_pass_the_checks() -> None:
    sandbox = Sandbox(timeout=120)
    failures = {}
    for task in load_suite(SUITE):
        report = sandbox.validate(
            task.reference, task.name, task.inputs, options={"task": task.task, "probes": True}
        )
        if any(c.failed for c in report.checks):
            failures[task.id] = [f"{c.name}: {c.message}" for c in report.checks if c.failed]
    assert failures == {}


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ({"id": "x"}, "does not hold a non-empty JSON list"),
        ([], "does not hold a non-empty JSON list"),
        (["mse"], "entry 0 of suite"),
        ([{"id": "mse", "task": "mse"}], "lacks the string field(s) inputs"),
        ([{"id": "mse", "task": "mse", "inputs": MSE_SPEC, "name": "not a name"}], "invalid name"),
        (
            [{"id": "mse", "task": "mse", "inputs": MSE_SPEC, "reference": "missing.py"}],
            "cannot be read",
        ),
        (
            [
                {"id": "mse", "task": "mse", "inputs": MSE_SPEC},
                {"id": "mse", "task": "mse", "inputs": MSE_SPEC},
            ],
            "repeats the id(s) mse",
        ),
    ],
)
def test_bad_suite_names_the_problem(tmp_path: Path, entries: object, fragment: str) -> None:
    path = write_suite(tmp_path, entries)
    with pytest.raises(ConfigurationError) as info:
        load_suite(path)
    assert fragment in str(info.value)


def test_suite_with_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text("[{")
    with pytest.raises(ConfigurationError, match="is not valid JSON"):
        load_suite(path)


def test_compare_agreeing_and_disagreeing() -> None:
    agree, difference, error = compare_to_reference(MSE, MSE, "loss_fn", MSE_SPEC, 0)
    assert (agree, difference, error) == (True, 0.0, "")

    agree, difference, error = compare_to_reference(MAE, MSE, "loss_fn", MSE_SPEC, 0)
    assert not agree
    assert difference > 1e-2
    assert error == ""


def test_compare_handles_broken_candidates() -> None:
    crashing = "def loss_fn(predictions, targets):\n    raise ValueError('boom')\n"
    agree, _, error = compare_to_reference(crashing, MSE, "loss_fn", MSE_SPEC, 0)
    assert not agree
    assert "ValueError: boom" in error

    unreduced = "def loss_fn(predictions, targets):\n    return (predictions - targets) ** 2\n"
    agree, difference, _ = compare_to_reference(unreduced, MSE, "loss_fn", MSE_SPEC, 0)
    assert not agree
    assert difference == float("inf")


def test_bench_command_writes_summaries(tmp_path: Path, responses_file) -> None:
    suite = write_suite(
        tmp_path,
        [
            {"id": "mse", "task": "squared error", "inputs": MSE_SPEC, "reference": "mse.py"},
            {"id": "abs", "task": "absolute error", "inputs": MSE_SPEC, "reference": "mse.py"},
            {"id": "free", "task": "absolute error", "inputs": MSE_SPEC},
        ],
    )
    mae_body = "\n    return (predictions - targets).abs().mean()\n```"
    responses = responses_file([NO_TESTS, MSE_BODY, NO_TESTS, mae_body, NO_TESTS, mae_body])
    out = tmp_path / "out"

    done = run_cli(
        "bench",
        str(suite),
        "--backend",
        "scripted",
        "--model",
        str(responses),
        "--max-iters",
        "1",
        "--no-retrieval",
        "--out",
        str(out),
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert "[3/3] free seed 0: validated, no reference" in done.stderr
    assert "abs seed 0: validated, disagrees" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "lossmagic"
    assert [run["status"] for run in summary["runs"]] == ["validated"] * 3
    assert [run["agreement"] for run in summary["runs"]] == [True, False, None]
    assert summary["validated_rate"] == 1.0
    assert summary["agreement_rate"] == pytest.approx(1 / 3)
    assert summary["false_acceptance_rate"] == pytest.approx(1 / 3)
    assert set(summary["seconds"]) == {"total", "generation", "validation", "other"}
    for run in summary["runs"]:
        assert Path(run["record"]).is_file()
        assert run["tokens"] > 0
    assert "| abs | 0 | validated | no |" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--strategy", "fancy"], "unknown strategy 'fancy'"),
        (["--tasks", "nope"], "the suite has no task(s) nope"),
        (["--candidates", "0"], "Invalid value"),
    ],
)
def test_bench_usage_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    done = run_cli("bench", str(SUITE), "--backend", "scripted", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr


@pytest.mark.model
def test_bench_with_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "bench",
        str(SUITE),
        "--tasks",
        "mse",
        "--strategy",
        "baseline",
        "--max-iters",
        "1",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert run["iterations"] == 1
    assert run["tokens"] > 0
    assert summary["seconds"]["generation"] > 0
