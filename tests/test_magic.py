"""The ``%%lossgen`` cell magic and the ``%lossgen`` line magic in a real IPython shell."""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config.loader import PyFileConfigLoader

from lossmagic.api import LossResult
from lossmagic.magics import HistoryEntry, LossMagics

from .conftest import MSE_BODY

SPEC = "'predictions:float[N,1] targets:float[N,1]'"
UNREDUCED_BODY = "\n    return (predictions - targets) ** 2\n```"
MODULE_BODY = "\n        return ((predictions - targets) ** 2).mean()\n```"


@contextlib.contextmanager
def loaded_shell(display: str = "text") -> Iterator[InteractiveShell]:
    """Yield a real IPython shell with lossmagic loaded, showing runs as ``display``."""
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "lossmagic")
    shell.run_line_magic("config", f"LossMagics.display = {display!r}")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "lossmagic")
        InteractiveShell.clear_instance()


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)
    with loaded_shell() as shell:
        yield shell


def scripted_tests_answer(name: str) -> str:
    """Return a model answer to the test-writing prompt, which ends on ``def test_``."""
    return (
        "zero_for_equal_inputs():\n"
        "    x = torch.ones(4, 1)\n"
        f"    assert float({name}(x, x)) == 0.0\n```"
    )


def use_responses(
    shell: InteractiveShell, responses_file, candidates: list[str], name: str = "my_mse"
) -> None:
    """Script the backend: first the generated tests, then one answer per candidate."""
    path = responses_file([scripted_tests_answer(name), *candidates])
    shell.run_line_magic("config", "LossMagics.backend = 'scripted'")
    shell.run_line_magic("config", f"LossMagics.model = {str(path)!r}")


def magics(shell: InteractiveShell) -> LossMagics:
    instance = shell.magics_manager.registry["LossMagics"]
    assert isinstance(instance, LossMagics)
    return instance


def test_magic_defines_validated_function(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [MSE_BODY])
    result = shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC}", "mean squared error")

    assert result.validated
    loss = shell.user_ns["my_mse"]
    assert float(loss(torch.ones(3, 1), torch.zeros(3, 1))) == 1.0
    assert "return ((predictions - targets) ** 2).mean()" in inspect.getsource(loss)


def test_magic_shows_repair_in_text(shell: InteractiveShell, responses_file, capsys) -> None:
    use_responses(shell, responses_file, [UNREDUCED_BODY, MSE_BODY])
    # Without retrieval the catalog's MSE entry is not offered, so the repair decides.
    line = f"--name my_mse --inputs {SPEC} --no-retrieval"
    result = shell.run_cell_magic("lossgen", line, "mse")

    output = capsys.readouterr().out
    assert [i.index for i in result.iterations] == [1, 2]
    assert "Iteration 1 (generate)" in output
    assert "return (predictions - targets) ** 2" in output
    assert "fail  scalar" in output
    assert "error class:" in output
    first = result.iterations[0]
    assert first.decision != "accept"
    assert f"decision: {first.decision}" in output
    assert "timings: generation" in output
    assert "generated tests (evidence, not verdicts):" in output
    assert "pass  test:test_zero_for_equal_inputs" in output
    assert "Defined my_mse() from the candidate validated at iteration 2" in output


def test_magic_defines_nothing_on_failure(shell: InteractiveShell, responses_file, capsys) -> None:
    use_responses(shell, responses_file, ["\n    return predictions - targets\n```"])
    result = shell.run_cell_magic(
        "lossgen", f"--name my_mse --inputs {SPEC} --max-iters 1 --no-retrieval", "mse"
    )

    assert result.status == "failed"
    assert "my_mse" not in shell.user_ns
    output = capsys.readouterr().out
    assert "Nothing was defined" in output
    assert "return predictions - targets" in output


def test_magic_result_is_cell_value(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [MSE_BODY], name="cell_mse")
    outcome = shell.run_cell(
        f"%%lossgen --name cell_mse --inputs {SPEC}\nmean squared error\n", store_history=True
    )
    assert outcome.success
    assert callable(shell.user_ns["cell_mse"])
    assert isinstance(outcome.result, LossResult)
    assert shell.user_ns["_"] is outcome.result


def test_magic_quiet_prints_nothing_on_success(
    shell: InteractiveShell, responses_file, capsys
) -> None:
    use_responses(shell, responses_file, [MSE_BODY], name="q")
    shell.run_cell_magic("lossgen", f"--name q --inputs {SPEC} --quiet", "mse")
    assert capsys.readouterr().out == ""


def test_magic_help_lists_every_option(shell: InteractiveShell, capsys) -> None:
    shell.run_cell_magic("lossgen", "--help", "ignored")
    output = capsys.readouterr().out
    for option in (
        "--name", "--inputs", "--backend", "--model", "--base-url", "--max-iters",
        "--candidates", "--temperature", "--seed", "--device", "--style", "--strategy",
        "--no-retrieval", "--insert", "--quiet",
    ):  # fmt: skip
        assert option in output
    assert "config, history, show N, reset or models" in output


@pytest.mark.parametrize(
    ("line", "cell", "fragment"),
    [
        ("", "   ", "needs a task"),
        ("--max-iters 0", "mse", "invalid --max-iters 0"),
        ("--candidates 0", "mse", "invalid --candidates 0"),
        ("--temperature -1", "mse", "invalid --temperature -1"),
        ("--name 1abc", "mse", "invalid --name '1abc'"),
        ("--style class", "mse", "invalid choice"),
        ("--inputs 'x:float[N'", "mse", "Invalid input spec item"),
        ("--inputs not_defined_here", "mse", "no variable of that name"),
        ("--backend nope", "mse", "unknown backend"),
        ("--bogus", "mse", "unrecognized arguments"),
    ],
)
def test_magic_usage_errors(shell: InteractiveShell, line: str, cell: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("lossgen", line, cell)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_magic_inputs_from_namespace_tensors(shell: InteractiveShell, responses_file) -> None:
    ns_body = "\n    return ((outputs - labels) ** 2).mean()\n```"
    use_responses(shell, responses_file, [ns_body], name="ns_mse")
    shell.user_ns["outputs"] = torch.randn(16, 1)
    shell.user_ns["labels"] = torch.randn(16, 1)
    result = shell.run_cell_magic("lossgen", "--name ns_mse --inputs outputs,labels", "mse")

    assert result.validated
    assert result.record.spec.startswith("outputs:float[N,1]")
    assert "labels:float[N,1]" in result.record.spec


def test_magic_module_style_defines_class(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [MODULE_BODY], name="no_tests_for_classes")
    result = shell.run_cell_magic(
        "lossgen", f"--name MSELossModule --style module --inputs {SPEC}", "mean squared error"
    )

    assert result.validated
    cls = shell.user_ns["MSELossModule"]
    assert issubclass(cls, torch.nn.Module)
    assert float(cls()(torch.ones(2, 1), torch.zeros(2, 1))) == 1.0
    assert result.record.settings["style"] == "module"


def test_magic_overwrite_warns_and_keeps_old(
    shell: InteractiveShell, responses_file, capsys
) -> None:
    use_responses(shell, responses_file, [MSE_BODY])
    old = object()
    shell.user_ns["my_mse"] = old
    shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC}", "mse")

    output = capsys.readouterr().out
    assert "Warning: replaced the existing 'my_mse' (object)" in output
    assert shell.user_ns["my_mse"] is not old
    entry = shell.run_line_magic("lossgen", "show 1")
    assert entry.replaced is old


def test_magic_insert_puts_code_in_next_cell(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [MSE_BODY])
    inserted: list[str] = []
    shell.set_next_input = lambda text, replace=False: inserted.append(text)  # type: ignore[method-assign]
    result = shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC} --insert", "mse")
    assert inserted == [result.code]


def test_magic_passes_settings_to_record(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [MSE_BODY, MSE_BODY], name="s")
    shell.run_line_magic("config", "LossMagics.max_iters = 3")
    result = shell.run_cell_magic(
        "lossgen",
        f"--name s --inputs {SPEC} --candidates 2 --seed 5 --temperature 0.3 --no-retrieval",
        "mse",
    )
    settings = result.record.settings
    assert settings["max_iters"] == 3
    assert settings["candidates"] == 2
    assert settings["seed"] == 5
    assert settings["temperature"] == 0.3
    assert settings["retrieval"] is False
    assert settings["strategy"] == "lossmagic"


def test_line_history_lists_session_and_disk(
    shell: InteractiveShell, responses_file, capsys
) -> None:
    use_responses(shell, responses_file, [MSE_BODY], name="first")
    shell.run_cell_magic("lossgen", f"--name first --inputs {SPEC}", "first task")
    shell.run_line_magic("unload_ext", "lossmagic")
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "lossmagic")
    use_responses(shell, responses_file, ["\n    return predictions\n```"], name="none")
    line = f"--name second --inputs {SPEC} --max-iters 1 --quiet"
    shell.run_cell_magic("lossgen", line, "second")
    capsys.readouterr()

    shell.run_line_magic("lossgen", "history")
    lines = capsys.readouterr().out.splitlines()
    assert "started" in lines[0]
    assert "first task" in lines[1]
    assert "validated" in lines[1]
    assert lines[1].endswith("(disk)")
    assert "second" in lines[2]
    assert "failed" in lines[2]
    assert not lines[2].endswith("(disk)")

    entry = shell.run_line_magic("lossgen", "show 2")
    assert isinstance(entry, HistoryEntry)
    assert entry.result.task == "second"


def test_line_show_renders_iterations(shell: InteractiveShell, responses_file) -> None:
    use_responses(shell, responses_file, [UNREDUCED_BODY, MSE_BODY])
    shell.run_cell_magic("lossgen", f"--name my_mse --inputs {SPEC} --quiet --no-retrieval", "mse")
    entry = shell.run_line_magic("lossgen", "show 1")

    formatted = shell.display_formatter.format(entry)[0]
    kind = entry.result.iterations[1].kind
    assert f"Iteration 2 ({kind}): validated -> accept" in formatted["text/plain"]
    assert formatted["text/html"].count("<details>") == 2


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("", "needs a subcommand"),
        ("show", "needs one run number"),
        ("show 5", "invalid run number 5"),
        ("frobnicate", "invalid %lossgen subcommand 'frobnicate'"),
        ("history extra", "invalid %lossgen subcommand"),
    ],
)
def test_line_usage_errors(shell: InteractiveShell, line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("lossgen", line)
    assert fragment in str(info.value)


def test_line_config_shows_traits(shell: InteractiveShell, capsys) -> None:
    shell.run_line_magic("config", "LossMagics.max_iters = 7")
    shell.run_line_magic("config", "LossMagics.device = 'cpu'")
    shell.run_line_magic("lossgen", "config")
    output = capsys.readouterr().out
    assert "max_iters       7" in output
    assert "device          'cpu'" in output
    assert "max_new_tokens" in output


def test_line_models_lists_embedded(shell: InteractiveShell, capsys) -> None:
    shell.run_line_magic("lossgen", "models")
    output = capsys.readouterr().out
    assert output.startswith("embedded")
    assert "SmolLM2-135M-Instruct" in output


def test_line_reset_clears_cached_backend(shell: InteractiveShell, capsys) -> None:
    from lossmagic import api

    api.get_backend("embedded")
    assert api._BACKENDS
    shell.run_line_magic("lossgen", "reset")
    assert not api._BACKENDS
    assert "restarted the sandbox worker" in capsys.readouterr().out


def test_ipython_config_file_sets_traits(tmp_path: Path) -> None:
    config_file = tmp_path / "ipython_config.py"
    config_file.write_text(
        "c = get_config()  # noqa: F821\n"
        "c.LossMagics.max_iters = 9\n"
        "c.LossMagics.candidates = 3\n"
        "c.LossMagics.backend = 'openai'\n"
    )
    config = PyFileConfigLoader(config_file.name, path=str(tmp_path)).load_config()
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "lossmagic")
        instance = magics(shell)
        assert instance.max_iters == 9
        assert instance.candidates == 3
        assert instance.backend == "openai"
    finally:
        shell.run_line_magic("unload_ext", "lossmagic")
        InteractiveShell.clear_instance()


def test_history_skips_unreadable_records(
    shell: InteractiveShell, tmp_path: Path, caplog, capsys
) -> None:
    broken = tmp_path / ".lossmagic" / "runs" / "20260101-000000-broken"
    broken.mkdir(parents=True)
    (broken / "record.json").write_text(json.dumps({"task": "only a task"}))
    shell.run_line_magic("lossgen", "history")
    assert "No runs yet" in capsys.readouterr().out
    assert "skipping unreadable run record" in caplog.text
