"""The ``lossmagic`` command line.

Exit codes: 0 when a loss validated, 1 when none did, 2 on usage or set-up errors,
130 when interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, TextIO

import typer

from lossmagic.api import generate_loss
from lossmagic.bench import bench_command
from lossmagic.checking import check_command
from lossmagic.exceptions import ConfigurationError, LossMagicError
from lossmagic.loop import LoopSettings
from lossmagic.progress import Event
from lossmagic.records import IterationRecord

__all__ = ["ConsoleProgress", "app", "main"]

logger = logging.getLogger(__name__)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a plain-language description of a training objective into a validated PyTorch loss.",
)


class ConsoleProgress:
    """Print progress events to a terminal stream (standard error by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._live = self.stream.isatty()
        self._tokens = 0
        self._stage_started = time.perf_counter()
        self._stage = ""

    def __call__(self, event: Event) -> None:
        if event.kind == "notice":
            self._line(event.message)
        elif event.kind == "stage":
            self._stage = self._stage_text(event)
            self._stage_started = time.perf_counter()
            self._tokens = 0
            self._line(self._stage)
        elif event.kind == "tokens":
            self._tokens += event.count
            if self._live:
                elapsed = max(time.perf_counter() - self._stage_started, 1e-9)
                rate = self._tokens / elapsed
                self.stream.write(f"\r{self._stage}: {self._tokens} tokens, {rate:.1f} tokens/s")
                self.stream.flush()
        elif event.kind == "iteration":
            record = event.data["record"]
            assert isinstance(record, IterationRecord)
            self._line(f"  {iteration_summary(record)}")

    def _stage_text(self, event: Event) -> str:
        if event.max_iters:
            return f"[{event.iteration}/{event.max_iters}] {event.message}"
        return event.message

    def _line(self, text: str) -> None:
        prefix = "\r\033[K" if self._live else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()


def iteration_summary(record: IterationRecord) -> str:
    """Summarize one iteration in a line: its checks, or its error class and message."""
    rate = (
        record.completion_tokens / record.generation_seconds if record.generation_seconds else 0.0
    )
    cost = (
        f"{record.completion_tokens} tokens at {rate:.1f}/s, "
        f"validated in {record.validation_seconds:.2f} s"
    )
    if record.validated:
        passed = sum(1 for c in record.checks if c.passed)
        return f"passed {passed} checks ({cost})"
    error = record.error or {"class": "unknown", "message": ""}
    message = error["message"].splitlines()[0] if error["message"] else ""
    return f"{error['class']}: {message[:200]} ({cost}); next: {record.decision}"


@app.callback()
def _root() -> None:
    """Turn a plain-language description of a training objective into a validated PyTorch loss."""


@app.command()
def generate(
    task: Annotated[str, typer.Argument(help="Plain-language description of the loss.")],
    inputs: Annotated[
        str | None,
        typer.Option(help="Input spec, e.g. 'logits:float[N,C] targets:long[N]<C' (the default)."),
    ] = None,
    name: Annotated[str, typer.Option(help="Name of the generated function.")] = "loss_fn",
    backend: Annotated[str, typer.Option(help="embedded, transformers or openai.")] = "embedded",
    model: Annotated[
        str | None, typer.Option(help="Model path or id for the chosen backend.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    base_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")
    ] = None,
    max_iters: Annotated[
        int, typer.Option(min=1, help="Maximum generate-and-validate rounds.")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Sampling seed of the first iteration.")] = 0,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Sampling temperature; 0 is greedy.")
    ] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(min=16, help="Token limit per candidate.")] = 384,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds allowed per validation job.")
    ] = 60.0,
    out: Annotated[
        Path | None, typer.Option(help="Also write the validated code to this file.")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Folder for run records.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Print no progress.")] = False,
    strategy: Annotated[
        str, typer.Option(help="lossmagic (checks decide) or baseline (the original design).")
    ] = "lossmagic",
    candidates: Annotated[
        int, typer.Option(min=1, help="Candidates sampled per round in one batched call.")
    ] = 1,
    retrieval: Annotated[
        bool, typer.Option(help="Use the catalog: worked examples and the reference cross-check.")
    ] = True,
) -> None:
    """Generate a loss for TASK, validate it in a sandbox and print the code."""
    settings = LoopSettings(
        max_iters=max_iters,
        seed=seed,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        timeout=timeout,
        strategy=strategy,
        candidates=candidates,
        retrieval=retrieval,
    )
    progress = None if quiet else ConsoleProgress()
    try:
        settings.check()
        if out is not None:
            _check_output_file(out)
        result = generate_loss(
            task,
            inputs=inputs,
            name=name,
            backend=backend,
            model=model,
            device=device,
            base_url=base_url,
            settings=settings,
            runs_dir=runs_dir,
            progress=progress,
        )
    except LossMagicError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: the run record keeps the iterations so far", err=True)
        raise typer.Exit(130) from None

    if out is not None and result.validated:
        out.write_text(result.code, encoding="utf-8")

    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        if result.code:
            typer.echo(result.code)
        typer.echo(str(result), err=True)
    raise typer.Exit(0 if result.validated else 1)


@app.command()
def models(
    prepare: Annotated[
        bool, typer.Option(help="Convert the embedded model now if needed.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    base_url: Annotated[
        str | None,
        typer.Option(help="Also list the models of this OpenAI-compatible server."),
    ] = None,
) -> None:
    """List the backends and models available here."""
    from lossmagic.models import list_models

    try:
        if prepare:
            from lossmagic.backends.embedded import prepare_embedded_model

            prepare_embedded_model(ConsoleProgress())
        entries = list_models(base_url)
    except LossMagicError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    if json_output:
        typer.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        location = entry.get("path") or entry.get("base_url") or ""
        line = f"{entry['backend']:<13}{entry['model']:<28} {entry['status']}  {location}"
        typer.echo(line.rstrip())


app.command("bench")(bench_command)
app.command("check")(check_command)


def _check_output_file(path: Path) -> None:
    """Raise ConfigurationError unless ``path`` can be written, before any work starts."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigurationError(f"--out {path} is a folder.", "Give a file path such as loss.py.")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigurationError(
            f"--out {path} cannot be written: {folder} is not a writable folder.",
            "Create the folder or choose another path.",
        )


def _interrupt_on_terminate(signum: int, frame: object) -> None:
    # SIGTERM ends a run the way Ctrl-C does, so the run record is marked interrupted.
    raise KeyboardInterrupt


def main() -> None:
    """Run the command line."""
    signal.signal(signal.SIGTERM, _interrupt_on_terminate)
    app()
