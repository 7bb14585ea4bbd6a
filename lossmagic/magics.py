"""IPython magics: ``%%lossgen`` generates a loss from the cell body; ``%lossgen`` manages runs.

Settings default to the traits of ``LossMagics``, settable with
``%config LossMagics.max_iters = 6`` or in ``ipython_config.py``::

    c.LossMagics.backend = "openai"
    c.LossMagics.base_url = "http://127.0.0.1:8000/v1"

The line magic takes one subcommand: ``config``, ``history``, ``show N``, ``reset`` or
``models``.
"""

from __future__ import annotations

import gc
import html
import keyword
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Enum, Float, Int, Unicode

from lossmagic.api import LossResult, RunInterrupted, clear_caches, generate_loss
from lossmagic.backends import Backend
from lossmagic.display import (
    TextProgress,
    WidgetProgress,
    report_html,
    report_text,
    widgets_available,
)
from lossmagic.exceptions import LossMagicError
from lossmagic.loop import LoopSettings
from lossmagic.records import DEFAULT_RUNS_DIR, RunRecord, load_record
from lossmagic.spec import spec_from_namespace

__all__ = ["HistoryEntry", "LossMagics"]

logger = logging.getLogger(__name__)

_MISSING = object()
_SUBCOMMANDS = "config, history, show N, reset, models"


def _unquote(args: Any) -> Any:
    """Strip one pair of matching quotes from string options.

    IPython splits magic lines without removing quotes, so ``--inputs 'a:float[N]'``
    would otherwise keep them.
    """
    for key, value in vars(args).items():
        if (
            isinstance(value, str)
            and len(value) >= 2
            and value[0] == value[-1]
            and value[0] in "'\""
        ):
            setattr(args, key, value[1:-1])
    return args


@dataclass
class HistoryEntry:
    """One run listed by ``%lossgen history``: from this session or from a record on disk.

    ``replaced`` keeps the object that a validated function replaced in the namespace.
    """

    number: int
    result: LossResult
    session: bool
    injected: str | None = None
    replaced: Any = _MISSING

    @property
    def replaced_something(self) -> bool:
        return self.replaced is not _MISSING

    def _repr_html_(self) -> str:
        extra = ""
        if self.replaced_something:
            extra = (
                f"<p>It replaced <code>{html.escape(repr(self.replaced))}</code>, "
                "kept here as <code>.replaced</code>.</p>"
            )
        return report_html(self.result, self.injected) + extra

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        text = report_text(self.result, self.injected)
        if self.replaced_something:
            text += f"\nIt replaced {self.replaced!r}, kept here as .replaced."
        printer.text(text)


@magics_class
class LossMagics(Magics):
    """Generate validated loss functions from plain-language cells."""

    backend = Unicode("embedded", help="Model backend: embedded, transformers or openai.").tag(
        config=True
    )
    model = Unicode("", help="Model path or id for the backend.").tag(config=True)
    base_url = Unicode("", help="Base URL of an OpenAI-compatible server.").tag(config=True)
    device = Unicode("auto", help="Device for in-process models: auto, cpu, cuda or cuda:N.").tag(
        config=True
    )
    max_iters = Int(4, help="Maximum generate-and-validate rounds per cell.").tag(config=True)
    candidates = Int(1, help="Candidates sampled per iteration.").tag(config=True)
    temperature = Float(0.7, help="Sampling temperature; 0 is greedy.").tag(config=True)
    runs_dir = Unicode(
        "", help="Folder for run records; empty means .lossmagic/runs under the working folder."
    ).tag(config=True)
    display = Enum(
        ["auto", "widgets", "text"],
        "auto",
        help="How runs are shown: widgets in a Jupyter kernel and text elsewhere (auto).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.results: list[HistoryEntry] = []

    @magic_arguments()
    @argument("--name", default="loss_fn", help="Name to define the validated loss under.")
    @argument(
        "--inputs",
        default=None,
        help="Input spec such as 'logits:float[N,C] targets:long[N]<C', or the names of "
        "tensors in the namespace, such as outputs,labels.",
    )
    @argument(
        "--backend",
        default=None,
        help="embedded, transformers or openai, or the name of a Backend object in the namespace.",
    )
    @argument("--model", default=None, help="Model path or id for the backend.")
    @argument("--base-url", default=None, help="Base URL of an OpenAI-compatible server.")
    @argument("--max-iters", type=int, default=None, help="Maximum generate-and-validate rounds.")
    @argument("--candidates", type=int, default=None, help="Candidates sampled per iteration.")
    @argument("--temperature", type=float, default=None, help="Sampling temperature; 0 is greedy.")
    @argument("--seed", type=int, default=0, help="Sampling seed of the first iteration.")
    @argument("--device", default=None, help="auto, cpu, cuda or cuda:N.")
    @argument(
        "--style",
        choices=["function", "module"],
        default="function",
        help="Generate a function, or an nn.Module class named by --name.",
    )
    @argument(
        "--strategy",
        choices=["lossmagic", "baseline"],
        default="lossmagic",
        help="lossmagic (checks decide, routed repairs) or baseline (the plain repair loop).",
    )
    @argument(
        "--no-retrieval",
        action="store_true",
        help="Show no worked examples from the catalog, so every candidate comes from the model.",
    )
    @argument(
        "--insert", action="store_true", help="Also put the validated code in a new cell below."
    )
    @argument("--quiet", action="store_true", help="Show no progress, only the result.")
    @line_cell_magic
    def lossgen(self, line: str, cell: str | None = None) -> Any:
        """Generate a loss from the cell body and define it in the namespace.

        As a line magic, run one subcommand: config, history, show N, reset or models.
        """
        if _wants_help(line):
            print(self.lossgen.__doc__)
            return None
        if cell is None:
            return self._line_command(line)
        return self._generate(line, cell)

    @property
    def _shell(self) -> InteractiveShell:
        if self.shell is None:
            raise UsageError("the lossmagic magics are not attached to an IPython shell.")
        return self.shell

    # The cell magic ------------------------------------------------------------------

    def _generate(self, line: str, cell: str) -> LossResult:
        args = _unquote(parse_argstring(self.lossgen, line))
        task = cell.strip()
        if not task:
            raise UsageError(
                "%%lossgen needs a task in the cell body, for example: focal loss with gamma 2."
            )
        if not args.name.isidentifier() or keyword.iskeyword(args.name):
            raise UsageError(f"invalid --name {args.name!r}: use a Python identifier.")

        settings = self._settings(args)
        backend = self._backend(args.backend)
        inputs = self._inputs(args.inputs)
        progress = self._progress(args, task)

        try:
            result = generate_loss(
                task,
                inputs=inputs,
                name=args.name,
                backend=backend,
                model=args.model or self.model or None,
                device=args.device or self.device,
                base_url=args.base_url or self.base_url or None,
                settings=settings,
                runs_dir=Path(self.runs_dir) if self.runs_dir else None,
                progress=progress,
            )
        except LossMagicError as exc:
            raise UsageError(str(exc)) from None
        except RunInterrupted as exc:
            self._remember(exc.result)
            if progress is not None:
                progress.finish(exc.result)
            else:
                print(f"Interrupted: nothing was defined (record {exc.result.record_path}).")
            raise
        finally:
            if progress is not None:
                progress.close()

        entry = self._remember(result)
        if result.validated:
            self._inject(entry)
            if args.insert:
                self._shell.set_next_input(result.code, replace=False)
        if progress is not None:
            progress.finish(result, entry.injected)
        elif not result.validated:
            print(f"Nothing was defined: {result.message}")
        return result

    def _settings(self, args: Any) -> LoopSettings:
        max_iters = args.max_iters if args.max_iters is not None else self.max_iters
        if max_iters < 1:
            raise UsageError(f"invalid --max-iters {max_iters}: use 1 or more.")
        candidates = args.candidates if args.candidates is not None else self.candidates
        if candidates < 1:
            raise UsageError(f"invalid --candidates {candidates}: use 1 or more.")
        temperature = args.temperature if args.temperature is not None else self.temperature
        if temperature < 0:
            raise UsageError(f"invalid --temperature {temperature}: use 0 (greedy) or more.")
        return LoopSettings(
            max_iters=max_iters,
            candidates=candidates,
            seed=args.seed,
            temperature=temperature,
            style=args.style,
            strategy=args.strategy,
            retrieval=not args.no_retrieval,
        )

    def _backend(self, requested: str | None) -> str | Backend:
        """Return the backend name, or the ``Backend`` object a namespace variable holds."""
        name = requested or self.backend
        value = self._shell.user_ns.get(name) if name.isidentifier() else None
        return value if isinstance(value, Backend) else name

    def _inputs(self, inputs: str | None) -> str | None:
        """Return the spec text, building it from namespace tensors when names are given."""
        try:
            spec = spec_from_namespace(inputs, self._shell.user_ns)
        except LossMagicError as exc:
            raise UsageError(str(exc)) from None
        return inputs if spec is None else str(spec)

    def _progress(self, args: Any, task: str) -> TextProgress | WidgetProgress | None:
        if args.quiet:
            return None
        use_widgets = self.display == "widgets" or (
            self.display == "auto" and widgets_available()
        )
        if not use_widgets:
            return TextProgress()
        panel = WidgetProgress(f"{args.name}: {task}")
        panel.show()
        return panel

    def _remember(self, result: LossResult) -> HistoryEntry:
        entry = HistoryEntry(len(self.results) + 1, result, session=True)
        self.results.append(entry)
        return entry

    def _inject(self, entry: HistoryEntry) -> None:
        """Define the validated code in the namespace, keeping any object it replaces."""
        name = entry.result.name
        value = entry.result.load()
        namespace = self._shell.user_ns
        if name in namespace:
            entry.replaced = namespace[name]
            self.history()
            print(
                f"Warning: replaced the existing {name!r} ({type(entry.replaced).__name__}); "
                f"the old object stays reachable: `%lossgen show {entry.number}` returns "
                "this run with it in .replaced."
            )
        namespace[name] = value
        entry.injected = f"{name}()" if not isinstance(value, type) else f"class {name}"

    # The line magic ------------------------------------------------------------------

    def _line_command(self, line: str) -> Any:
        words = shlex.split(line)
        if not words:
            raise UsageError(f"%lossgen needs a subcommand: {_SUBCOMMANDS}.")
        command, rest = words[0], words[1:]
        if command == "show":
            if len(rest) != 1 or not rest[0].isdigit():
                raise UsageError("%lossgen show needs one run number, such as: %lossgen show 1.")
            return self._show(int(rest[0]))
        handlers = {
            "config": self._show_config,
            "history": self._show_history,
            "reset": self._reset,
            "models": self._show_models,
        }
        if command not in handlers or rest:
            raise UsageError(f"invalid %lossgen subcommand {line.strip()!r}: use {_SUBCOMMANDS}.")
        handlers[command]()
        return None

    def _show_config(self) -> None:
        defaults = LoopSettings()
        rows = [(name, getattr(self, name)) for name in sorted(self.trait_names(config=True))]
        rows += [
            ("top_p", defaults.top_p),
            ("max_new_tokens", defaults.max_new_tokens),
            ("timeout", defaults.timeout),
        ]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value!r}")

    def history(self) -> list[HistoryEntry]:
        """Return the runs of this session and those recorded in the runs folder, oldest first."""
        entries = list(self.results)
        seen = {str(e.result.record_path.resolve()) for e in entries}
        for record in self._disk_records():
            if str(record.record_path.resolve()) not in seen:
                entries.append(HistoryEntry(0, LossResult(record), session=False))
        entries.sort(key=lambda e: e.result.record.started)
        for number, entry in enumerate(entries, start=1):
            entry.number = number
        return entries

    def _disk_records(self) -> list[RunRecord]:
        root = Path(self.runs_dir) if self.runs_dir else Path.cwd() / DEFAULT_RUNS_DIR
        records = []
        for path in sorted(root.glob("*/record.json")):
            try:
                records.append(load_record(path))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("skipping unreadable run record %s: %s", path, exc)
        return records

    def _show_history(self) -> None:
        entries = self.history()
        if not entries:
            print("No runs yet in this session or in the runs folder.")
            return
        print(f"{'#':>3}  {'started':<19} {'status':<11} {'rounds':>6}  {'model':<28} task")
        for entry in entries:
            record = entry.result.record
            where = "" if entry.session else "  (disk)"
            print(
                f"{entry.number:>3}  {record.started[:19]:<19} {record.status:<11} "
                f"{record.rounds:>6}  {record.model[:28]:<28} {record.task[:60]}{where}"
            )

    def _show(self, number: int) -> HistoryEntry:
        entries = self.history()
        if not 1 <= number <= len(entries):
            raise UsageError(
                f"invalid run number {number}: %lossgen history lists runs 1 to {len(entries)}."
            )
        return entries[number - 1]

    def _reset(self) -> None:
        clear_caches()
        from lossmagic.sandbox import restart_worker

        restart_worker()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print("Unloaded cached models, freed their memory and restarted the sandbox worker.")

    def _show_models(self) -> None:
        from lossmagic.models import list_models

        for entry in list_models():
            path = f"  {entry['path']}" if entry.get("path") else ""
            print(f"{entry['backend']:<13}{entry['model']:<28}{entry['status']}{path}")


def _wants_help(line: str) -> bool:
    try:
        words = shlex.split(line)
    except ValueError:
        return False
    return "--help" in words or "-h" in words
