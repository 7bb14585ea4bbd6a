"""The live widget panel, the static HTML report and the text report of a run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import lossmagic.magics
from lossmagic.api import LossResult
from lossmagic.checks.base import CheckResult
from lossmagic.display import WidgetProgress, report_html, report_text
from lossmagic.progress import Event
from lossmagic.records import IterationRecord, RunRecord

from .test_magic import MSE_BODY, SPEC, UNREDUCED_BODY, loaded_shell, scripted_tests_answer


class Clock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failed_iteration() -> IterationRecord:
    return IterationRecord(
        index=1,
        kind="generate",
        code="def f(a):\n    return a\n",
        checks=[
            CheckResult("scalar", "fail", "returned shape (4, 1)", {"shape": [4, 1]}),
            CheckResult("test:test_zero", "fail", "AssertionError", authoritative=False),
        ],
        error={"class": "non_scalar", "message": "returned shape (4, 1)", "source": "scalar"},
        decision="repair: non_scalar",
        completion_tokens=40,
        generation_seconds=2.0,
        validation_seconds=0.5,
    )


def test_widget_panel_follows_events() -> None:
    clock = Clock()
    panel = WidgetProgress("f: task", clock=clock)
    panel(Event("stage", "generating (generate)", 1, 3))
    assert "generating (generate) (iteration 1 of 3" in panel.status.value

    clock.now += 1.0
    panel(Event("tokens", count=12, iteration=1))
    assert "12 tokens at" in panel.status.value
    assert "tokens/s" in panel.status.value
    assert "s elapsed" in panel.status.value

    panel(Event("iteration", "repair", 1, 3, data={"record": failed_iteration()}))
    assert len(panel.accordion.children) == 1
    title = panel.accordion.get_title(0)
    assert title == "Iteration 1 (generate): non_scalar -> repair: non_scalar"
    body = panel.accordion.children[0].value
    assert "returned shape (4, 1)" in body
    assert "Generated tests" in body
    assert "Decision:" in body


def test_widget_panel_throttles_token_updates() -> None:
    clock = Clock()
    panel = WidgetProgress("f: task", clock=clock)
    panel(Event("stage", "generating (generate)", 1, 3))
    clock.now += 1.0
    panel(Event("tokens", count=5))
    shown = panel.status.value
    panel(Event("tokens", count=5))
    assert panel.status.value == shown
    clock.now += 1.0
    panel(Event("tokens", count=5))
    assert "15 tokens" in panel.status.value


def test_widget_panel_ticks_between_events() -> None:
    panel = WidgetProgress("f: task")
    panel.show()
    panel(Event("stage", "validating", 1, 3))
    assert "0 s elapsed" in panel.status.value

    time.sleep(2.5)
    assert "0 s elapsed" not in panel.status.value
    panel.close()
    stopped = panel.status.value
    time.sleep(1.5)
    assert panel.status.value == stopped


@pytest.fixture
def widget_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)
    with loaded_shell("widgets") as shell:
        yield shell


def test_magic_fills_widget_panel(
    widget_shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panels: list[WidgetProgress] = []

    class RecordingPanel(WidgetProgress):
        def __init__(self, title: str) -> None:
            super().__init__(title)
            panels.append(self)

    monkeypatch.setattr(lossmagic.magics, "WidgetProgress", RecordingPanel)
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps([scripted_tests_answer("my_mse"), UNREDUCED_BODY, MSE_BODY]))
    widget_shell.run_line_magic("config", "LossMagics.backend = 'scripted'")
    widget_shell.run_line_magic("config", f"LossMagics.model = {str(responses)!r}")

    result = widget_shell.run_cell_magic(
        "lossgen", f"--name my_mse --inputs {SPEC} --no-retrieval", "mse"
    )

    assert result.validated
    (panel,) = panels
    assert len(panel.accordion.children) == 2
    kind = result.iterations[1].kind
    assert panel.accordion.get_title(1) == f"Iteration 2 ({kind}): validated -> accept"
    assert panel.final.value.startswith("<b>Defined my_mse() from the candidate validated")
    assert "validated in" in panel.status.value


def sample_result(tmp_path: Path) -> LossResult:
    record = RunRecord(
        task="mean squared error",
        name="f",
        spec="a:float[N]",
        backend="scripted",
        model="responses.json",
        settings={},
        status="failed",
        message="no candidate validated in 1 iteration(s)",
        folder=str(tmp_path),
        iterations=[failed_iteration()],
    )
    return LossResult(record)


def test_html_report_has_every_part(tmp_path: Path) -> None:
    page = report_html(sample_result(tmp_path))
    assert page.count("<details>") == 1
    assert "<summary>Iteration 1 (generate): non_scalar -&gt; repair: non_scalar</summary>" in page
    assert "<span style=" in page  # pygments highlighting with inline styles
    assert "<caption style='text-align:left'>Checks</caption>" in page
    assert "Generated tests (evidence, not verdicts)" in page
    assert "{&quot;shape&quot;: [4, 1]}" in page
    assert "<b>Error class:</b> <code>non_scalar</code>" in page
    assert "generation 2.0 s (40 tokens, 20.0 tokens/s), validation 0.50 s" in page
    assert "Nothing was defined: no candidate validated" in page


def test_text_report_matches_html_facts(tmp_path: Path) -> None:
    text = report_text(sample_result(tmp_path))
    assert "Iteration 1 (generate): non_scalar -> repair: non_scalar" in text
    assert "    fail  scalar: returned shape (4, 1)" in text
    assert 'evidence: {"shape": [4, 1]}' in text
    assert "generated tests (evidence, not verdicts):" in text
    assert "    fail  test:test_zero: AssertionError" in text
    assert "error class: non_scalar" in text
    assert "generation 2.0 s (40 tokens, 20.0 tokens/s), validation 0.50 s" in text
    record = tmp_path / "record.json"
    assert text.endswith(f"no candidate validated in 1 iteration(s) (record {record}).")


def test_result_reprs(tmp_path: Path) -> None:
    result = sample_result(tmp_path)
    assert "<span style='color:#cf222e;font-weight:bold'>failed</span>" in result._repr_html_()
    formatted = InteractiveShell.instance().display_formatter.format(result)[0]
    assert formatted["text/plain"].startswith("f: failed after 1 iteration(s)")
    InteractiveShell.clear_instance()
