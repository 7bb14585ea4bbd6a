"""The ``%%lossgen`` magic in a real IPython shell."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from .conftest import MSE_BODY

SPEC = "'predictions:float[N,1] targets:float[N,1]'"


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[InteractiveShell]:
    previous = Path.cwd()
    os.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "lossmagic")
    yield shell
    shell.run_line_magic("unload_ext", "lossmagic")
    InteractiveShell.clear_instance()
    os.chdir(previous)


def use_responses(shell: InteractiveShell, path: Path) -> None:
    shell.run_line_magic("config", "LossMagics.backend = 'scripted'")
    shell.run_line_magic("config", f"LossMagics.model = {str(path)!r}")


def test_magic_defines_validated_function(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file([MSE_BODY]))
    result = shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC}", "mean squared error")

    assert result.validated
    loss = shell.user_ns["my_mse"]
    assert float(loss(torch.ones(3, 1), torch.zeros(3, 1))) == 1.0
    assert "return ((predictions - targets) ** 2).mean()" in inspect.getsource(loss)


def test_magic_defines_nothing_on_failure(shell: InteractiveShell, responses_file, capsys) -> None:
    use_responses(shell, responses_file(["\n    return predictions - targets\n```"]))
    result = shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC} --max-iters 1", "mse")

    assert result.status == "failed"
    assert "my_mse" not in shell.user_ns
    output = capsys.readouterr().out
    assert "Nothing was defined" in output
    assert "return predictions - targets" in output


def test_magic_runs_as_a_cell(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file([MSE_BODY]))
    outcome = shell.run_cell(f"%%lossgen --name cell_mse --inputs {SPEC}\nmean squared error\n")
    assert outcome.success
    assert callable(shell.user_ns["cell_mse"])


@pytest.mark.parametrize(
    ("line", "cell", "fragment"),
    [
        ("", "   ", "needs a task"),
        ("--max-iters 0", "mse", "invalid --max-iters 0"),
        ("--inputs 'x:float[N'", "mse", "Invalid input spec item"),
        ("--backend nope", "mse", "unknown backend"),
    ],
)
def test_magic_usage_errors(shell: InteractiveShell, line: str, cell: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("lossgen", line, cell)
    assert fragment in str(info.value)
