"""Showing runs in notebooks and terminals: live widgets, static HTML and plain text.

Three renderings carry the same facts about each iteration (code, checks with their
evidence, error class, decision, generated tests with results, timings):

- ``WidgetProgress``: an ipywidgets 8 panel updated while the loop runs, then one
  accordion section per iteration and a final line;
- ``report_html``: static HTML with one ``<details>`` section per iteration, for
  nbconvert output and front ends without widget state;
- ``report_text``: plain text for terminals and ``text/plain`` outputs.
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from lossmagic.checks.base import CheckResult
from lossmagic.progress import Event
from lossmagic.records import IterationRecord

if TYPE_CHECKING:
    from lossmagic.api import LossResult

__all__ = [
    "TextProgress",
    "WidgetProgress",
    "final_line",
    "iteration_html",
    "iteration_text",
    "iteration_title",
    "report_html",
    "report_text",
    "summary_html",
    "summary_text",
    "widgets_available",
]

_EVIDENCE_LIMIT = 300
_TEST_PREFIX = "test:"
_REFRESH_SECONDS = 0.25
_TICK_SECONDS = 1.0
_VERDICT_COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#6e7781"}


def widgets_available() -> bool:
    """Return whether this process runs in a Jupyter kernel that can show ipywidgets."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _evidence_text(check: CheckResult) -> str:
    if not check.evidence:
        return ""
    text = json.dumps(check.evidence, default=str, sort_keys=True)
    return text if len(text) <= _EVIDENCE_LIMIT else text[: _EVIDENCE_LIMIT - 3] + "..."


def _split_checks(
    iteration: IterationRecord,
) -> tuple[list[CheckResult], list[CheckResult], list[CheckResult]]:
    """Split an iteration's results into checks, generated tests and other evidence.

    Only the authoritative checks decide acceptance; the model-written tests (named
    ``test:...``) and cross-checks such as a reference comparison are evidence.
    """
    checks = [c for c in iteration.checks if c.authoritative]
    evidence = [c for c in iteration.checks if not c.authoritative]
    tests = [c for c in evidence if c.name.startswith(_TEST_PREFIX)]
    others = [c for c in evidence if not c.name.startswith(_TEST_PREFIX)]
    return checks, tests, others


def _rate(iteration: IterationRecord) -> float:
    if not iteration.generation_seconds:
        return 0.0
    return iteration.completion_tokens / iteration.generation_seconds


def iteration_title(iteration: IterationRecord) -> str:
    """Return a one-line title: index, kind, outcome and decision."""
    if iteration.validated:
        outcome = "validated"
    elif iteration.error:
        outcome = iteration.error["class"]
    else:
        outcome = "interrupted" if not iteration.decision else "no verdict"
    decision = f" -> {iteration.decision}" if iteration.decision else ""
    return f"Iteration {iteration.index} ({iteration.kind}): {outcome}{decision}"


def _timings_text(iteration: IterationRecord) -> str:
    return (
        f"generation {iteration.generation_seconds:.1f} s "
        f"({iteration.completion_tokens} tokens, {_rate(iteration):.1f} tokens/s), "
        f"validation {iteration.validation_seconds:.2f} s"
    )


def final_line(result: LossResult, injected: str | None = None) -> str:
    """Return the closing sentence of a run: what was defined, or why nothing was."""
    count = len(result.iterations)
    if injected:
        accepted = next(
            (i.index for i in result.iterations if i.code_sha256 == result.record.code_sha256),
            count,
        )
        return (
            f"Defined {injected} from the candidate validated at iteration {accepted} "
            f"({result.seconds:.1f} s, record {result.record_path})."
        )
    if result.status == "interrupted":
        return (
            f"Interrupted after {count} iteration(s): nothing was defined "
            f"(record {result.record_path})."
        )
    return f"Nothing was defined: {result.message} (record {result.record_path})."


# Plain text ------------------------------------------------------------------------------


def iteration_text(iteration: IterationRecord) -> str:
    """Render one iteration as plain text."""
    lines = [iteration_title(iteration), f"  timings: {_timings_text(iteration)}"]
    if iteration.code:
        lines.append("  code:")
        lines.extend(f"    {line}" for line in iteration.code.splitlines())
    elif iteration.raw_output:
        lines.append("  model output (no usable code):")
        lines.extend(f"    {line}" for line in iteration.raw_output.splitlines()[:20])

    checks, tests, others = _split_checks(iteration)
    for title, group in (
        ("checks", checks),
        ("generated tests (evidence, not verdicts)", tests),
        ("other evidence", others),
    ):
        if group:
            lines.append(f"  {title}:")
            lines.extend(_check_lines(group))
    if iteration.error:
        lines.append(f"  error class: {iteration.error['class']}")
        lines.append(f"  error: {iteration.error['message'].strip()}")
    lines.append(f"  decision: {iteration.decision or '(none)'}")
    return "\n".join(lines)


def _check_lines(checks: list[CheckResult]) -> list[str]:
    lines = []
    for check in checks:
        lines.append(f"    {check.verdict:<5} {check.name}: {check.message}")
        evidence = _evidence_text(check)
        if evidence and check.verdict != "pass":
            lines.append(f"          evidence: {evidence}")
    return lines


def summary_text(result: LossResult) -> str:
    """Render the outcome of a run in a few lines, with the validated code."""
    lines = [
        f"{result.name}: {result.status} after {len(result.iterations)} iteration(s) "
        f"in {result.seconds:.1f} s with {result.record.backend} {result.model}",
        f"task: {result.task}",
        f"message: {result.message}",
        f"record: {result.record_path}",
    ]
    if result.validated:
        lines.append("code:")
        lines.extend(f"    {line}" for line in result.code.splitlines())
    return "\n".join(lines)


def report_text(result: LossResult, injected: str | None = None) -> str:
    """Render a whole run as plain text: summary, every iteration and the final line."""
    parts = [summary_text(result)]
    parts.extend(iteration_text(i) for i in result.iterations)
    parts.append(final_line(result, injected))
    return "\n\n".join(parts)


# HTML ------------------------------------------------------------------------------------


def _code_html(code: str) -> str:
    formatter = HtmlFormatter(noclasses=True, nowrap=False, style="default")
    return str(highlight(code, PythonLexer(), formatter))


def _checks_table(checks: list[CheckResult], caption: str) -> str:
    if not checks:
        return ""
    rows = []
    for check in checks:
        color = _VERDICT_COLORS.get(check.verdict, "inherit")
        rows.append(
            "<tr>"
            f"<td style='color:{color};font-weight:bold'>{html.escape(check.verdict)}</td>"
            f"<td><code>{html.escape(check.name)}</code></td>"
            f"<td>{html.escape(check.message)}</td>"
            f"<td><code>{html.escape(_evidence_text(check))}</code></td>"
            f"<td style='white-space:nowrap'>{check.seconds:.2f} s</td>"
            "</tr>"
        )
    head = "<tr><th>verdict</th><th>check</th><th>message</th><th>evidence</th><th>time</th></tr>"
    return (
        f"<table class='lossmagic-checks'><caption style='text-align:left'>{caption}</caption>"
        f"{head}{''.join(rows)}</table>"
    )


def iteration_html(iteration: IterationRecord) -> str:
    """Render one iteration's body as HTML: code, checks, tests, error, decision, timings."""
    parts = []
    if iteration.code:
        parts.append(_code_html(iteration.code))
    elif iteration.raw_output:
        parts.append(
            "<p>The model output held no usable code:</p>"
            f"<pre>{html.escape(iteration.raw_output[:2000])}</pre>"
        )
    checks, tests, others = _split_checks(iteration)
    parts.append(_checks_table(checks, "Checks"))
    parts.append(_checks_table(tests, "Generated tests (evidence, not verdicts)"))
    parts.append(_checks_table(others, "Other evidence"))
    if iteration.error:
        parts.append(
            f"<p><b>Error class:</b> <code>{html.escape(iteration.error['class'])}</code></p>"
            f"<pre>{html.escape(iteration.error['message'].strip())}</pre>"
        )
    parts.append(f"<p><b>Decision:</b> {html.escape(iteration.decision or '(none)')}</p>")
    parts.append(f"<p><b>Timings:</b> {html.escape(_timings_text(iteration))}</p>")
    return "".join(parts)


def summary_html(result: LossResult) -> str:
    """Render the outcome of a run as a short HTML block, with the validated code."""
    color = "#1a7f37" if result.validated else "#cf222e"
    head = (
        f"<p><b><code>{html.escape(result.name)}</code></b>: "
        f"<span style='color:{color};font-weight:bold'>{html.escape(result.status)}</span> "
        f"after {len(result.iterations)} iteration(s) in {result.seconds:.1f} s with "
        f"{html.escape(result.record.backend)} <code>{html.escape(result.model)}</code><br>"
        f"{html.escape(result.message)}<br>"
        f"record: <code>{html.escape(str(result.record_path))}</code></p>"
    )
    code = _code_html(result.code) if result.validated else ""
    return f"<div class='lossmagic-summary'>{head}{code}</div>"


def report_html(result: LossResult, injected: str | None = None) -> str:
    """Render a whole run as static HTML: summary, one section per iteration, final line."""
    sections = "".join(
        f"<details><summary>{html.escape(iteration_title(i))}</summary>"
        f"{iteration_html(i)}</details>"
        for i in result.iterations
    )
    return (
        f"<div class='lossmagic-report'>{summary_html(result)}{sections}"
        f"<p><b>{html.escape(final_line(result, injected))}</b></p></div>"
    )


# Progress --------------------------------------------------------------------------------


class _ProgressState:
    """The facts that the live displays show: stage, iteration, token rate and elapsed time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stage = "starting"
        self.iteration = 0
        self.max_iters = 0
        self.tokens = 0
        self.stage_started = self.started

    def update(self, event: Event) -> None:
        if event.kind in ("stage", "notice"):
            self.stage = event.message
            self.stage_started = time.perf_counter()
            self.tokens = 0
            if event.max_iters:
                self.iteration, self.max_iters = event.iteration, event.max_iters
        elif event.kind == "tokens":
            self.tokens += event.count

    def line(self) -> str:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.stage_started, 1e-9)
        position = f"iteration {self.iteration} of {self.max_iters}, " if self.max_iters else ""
        tokens = f"{self.tokens} tokens at {rate:.1f} tokens/s, " if self.tokens else ""
        return f"{self.stage} ({position}{tokens}{now - self.started:.0f} s elapsed)"


class TextProgress:
    """Print the run as plain text: a line per stage and per iteration, then the details."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.state = _ProgressState()

    def __call__(self, event: Event) -> None:
        self.state.update(event)
        if event.kind in ("stage", "notice"):
            self._write(self.state.line())
        elif event.kind == "iteration":
            record = event.data["record"]
            assert isinstance(record, IterationRecord)
            self._write(f"  {iteration_title(record)}")

    def close(self) -> None:
        """Do nothing: printed lines need no cleanup."""

    def finish(self, result: LossResult, injected: str | None = None) -> None:
        """Print every iteration's details and the final line."""
        for iteration in result.iterations:
            self._write(iteration_text(iteration))
        self._write(final_line(result, injected))

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class WidgetProgress:
    """A live ipywidgets panel: a status line, one accordion section per iteration, a final line.

    The display also carries the static HTML and plain-text reports, which front ends
    show where the widget state is missing (nbconvert output, a reopened notebook).
    """

    def __init__(self, title: str, clock: Callable[[], float] = time.perf_counter) -> None:
        import ipywidgets

        self._clock = clock
        self._last_refresh = 0.0
        self.state = _ProgressState()
        self.title = ipywidgets.HTML(f"<b>%%lossgen</b> {html.escape(title)}")
        self.status = ipywidgets.HTML(html.escape(self.state.line()))
        self.accordion = ipywidgets.Accordion(children=[])
        self.final = ipywidgets.HTML("")
        self.panel = ipywidgets.VBox([self.title, self.status, self.accordion, self.final])
        self.panel.add_class("lossmagic-panel")
        self._handle: Any = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def show(self) -> None:
        """Display the panel and refresh its elapsed time every second until ``close``."""
        from IPython.display import display

        self._handle = display(self._bundle("running", "<p>running</p>"), raw=True, display_id=True)
        threading.Thread(target=self._tick, name="lossmagic-panel", daemon=True).start()

    def _tick(self) -> None:
        # Events stop while the model loads or a candidate is validated, so the elapsed
        # time is refreshed from this thread as well.
        while not self._closed.wait(_TICK_SECONDS):
            with self._lock:
                if not self._closed.is_set():
                    self.status.value = html.escape(self.state.line())

    def close(self) -> None:
        """Stop refreshing the elapsed time."""
        with self._lock:
            self._closed.set()

    def __call__(self, event: Event) -> None:
        self.state.update(event)
        if event.kind == "iteration":
            record = event.data["record"]
            assert isinstance(record, IterationRecord)
            self.add_iteration(record)
        now = self._clock()
        if event.kind != "tokens" or now - self._last_refresh >= _REFRESH_SECONDS:
            self._last_refresh = now
            self.status.value = html.escape(self.state.line())

    def add_iteration(self, iteration: IterationRecord) -> None:
        """Append an accordion section for a finished iteration."""
        import ipywidgets

        body = ipywidgets.HTML(iteration_html(iteration))
        self.accordion.children = [*self.accordion.children, body]
        self.accordion.set_title(len(self.accordion.children) - 1, iteration_title(iteration))

    def finish(self, result: LossResult, injected: str | None = None) -> None:
        """Show the final line and store the static reports beside the widget."""
        self.close()
        line = final_line(result, injected)
        self.status.value = html.escape(f"{result.status} in {result.seconds:.1f} s")
        self.final.value = f"<b>{html.escape(line)}</b>"
        if self._handle is not None:
            self._handle.update(
                self._bundle(report_text(result, injected), report_html(result, injected)),
                raw=True,
            )

    def _bundle(self, text: str, html_text: str) -> dict[str, Any]:
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.panel.model_id,
            },
            "text/html": html_text,
            "text/plain": text,
        }
