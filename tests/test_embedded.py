"""End to end on the real embedded model (SmolLM2-135M-Instruct, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.model


def test_generate_with_embedded_model_leaves_complete_record(tmp_path: Path) -> None:
    done = run_cli(
        "generate",
        "mean squared error loss for regression",
        "--inputs",
        "predictions:float[N,1] targets:float[N,1]",
        "--max-iters",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1), done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == ("validated" if done.returncode == 0 else "failed")
    assert summary["model"] == "SmolLM2-135M-Instruct"
    assert "embedded model SmolLM2-135M-Instruct" in done.stderr

    record = json.loads(Path(summary["record_path"]).read_text())
    assert record["backend"] == "embedded"
    assert record["iterations"], "the run recorded no iteration"
    assert max(i["round"] for i in record["iterations"]) <= 2

    # Worked examples and mechanical repairs are candidates that the harness wrote; every
    # other candidate must carry the model's real output and the prompt that produced it.
    from_model = [
        i
        for i in record["iterations"]
        if not any(
            n.startswith(("worked example", "mechanical repair")) for n in i["extraction_notes"]
        )
    ]
    assert from_model, "no candidate came from the model"
    for iteration in from_model:
        assert iteration["raw_output"].strip(), "a model candidate has no model output"
        assert iteration["completion_tokens"] > 0
        assert "mean squared error loss for regression" in iteration["messages"][-1]["content"]
    for iteration in record["iterations"]:
        assert iteration["code"] or iteration["error"]
    if done.returncode == 0:
        assert (Path(summary["record_path"]).parent / "loss.py").read_text() == summary["code"]
