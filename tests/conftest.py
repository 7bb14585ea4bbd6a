"""Shared fixtures: run folders under tmp_path and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CROSS_ENTROPY_BODY = "\n    return F.cross_entropy(logits, targets)\n```"
MSE_BODY = "\n    return ((predictions - targets) ** 2).mean()\n```"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def responses_file(tmp_path: Path):
    """Write scripted responses to a JSON file and return its path."""

    def write(responses: list[str]) -> Path:
        path = tmp_path / "responses.json"
        path.write_text(json.dumps(responses))
        return path

    return write


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``lossmagic`` command line as a user would."""
    executable = Path(sys.executable).with_name("lossmagic")
    return subprocess.run(
        [str(executable), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
