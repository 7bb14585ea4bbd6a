"""``lossmagic check``: validate a loss file with the checks that the generate loop uses.

The file may be generated or hand-written. Usage errors are found without running the
file: a missing file, no function of that name, or a signature that cannot take the
spec's inputs. The checks themselves run in the sandbox, as in the generate loop.

Exit codes: 0 when every authoritative check passed, 1 when one failed, 2 on usage errors.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from lossmagic.catalog.retrieval import reference_for
from lossmagic.checks.base import CheckResult
from lossmagic.errors import classify
from lossmagic.exceptions import ConfigurationError, LossMagicError
from lossmagic.sandbox import Sandbox, SandboxReport
from lossmagic.spec import InputSpec, parse_spec

__all__ = ["FileCheck", "check_command", "check_file", "find_loss_name", "format_checks"]

logger = logging.getLogger(__name__)

_DEFAULT_NAME = "loss_fn"


@dataclass
class FileCheck:
    """The outcome of checking one loss file."""

    path: Path
    name: str
    spec: InputSpec
    task: str
    report: SandboxReport

    @property
    def passed(self) -> bool:
        return self.report.passed

    def to_json(self) -> dict[str, Any]:
        error = classify(self.report.checks)
        return {
            "file": str(self.path),
            "name": self.name,
            "inputs": str(self.spec),
            "task": self.task,
            "passed": self.passed,
            "outcome": self.report.outcome,
            "error": error.to_dict() if error else None,
            "seconds": self.report.seconds,
            "checks": [check.to_dict() for check in self.report.checks],
        }


def _definitions(
    tree: ast.Module,
) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def find_loss_name(source: str, path: Path, name: str | None = None) -> str:
    """Return the loss's name in ``source``: ``name``, the one public function or class.

    Raises ConfigurationError when the source does not parse, the named definition is
    missing, or several functions could be the loss and no name was given.
    """
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ConfigurationError(
            f"{path} does not parse: {exc.msg} at line {exc.lineno}.", "Fix the syntax error."
        ) from None
    definitions = _definitions(tree)

    if name is not None:
        if name not in definitions:
            found = ", ".join(definitions) or "nothing"
            raise ConfigurationError(
                f"{path} defines no function or class named {name!r} (it defines {found}).",
                "Pass the loss's name with --name.",
            )
        return name

    functions = [
        n
        for n, node in definitions.items()
        if not isinstance(node, ast.ClassDef) and not n.startswith("_")
    ]
    if len(functions) == 1:
        return functions[0]
    if _DEFAULT_NAME in definitions:
        return _DEFAULT_NAME
    classes = [
        n
        for n, node in definitions.items()
        if isinstance(node, ast.ClassDef) and not n.startswith("_")
    ]
    if not functions and len(classes) == 1:
        return classes[0]
    if not functions:
        raise ConfigurationError(
            f"{path} defines no public function.", "Pass the loss's name with --name."
        )
    raise ConfigurationError(
        f"{path} defines several functions ({', '.join(functions)}).",
        "Choose the loss with --name.",
    )


def _check_fits_spec(source: str, name: str, spec: InputSpec) -> None:
    """Raise ConfigurationError when the signature of ``name`` cannot take the spec's inputs."""
    node = _definitions(ast.parse(source))[name]
    skip_self = 0
    if isinstance(node, ast.ClassDef):
        methods = {
            m.name: m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        if "forward" not in methods and "__call__" not in methods:
            # The class may inherit its call; the sandbox checks it.
            return
        node = methods.get("forward") or methods["__call__"]
        skip_self = 1

    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args][skip_self:]
    required = len(positional) - len(arguments.defaults)
    names = [a.arg for a in positional]
    signature = f"{name}({', '.join(names)})"

    fix = "Give --inputs one item per parameter, in order."
    if len(positional) < len(spec.items) and arguments.vararg is None:
        problem = (
            f"the input spec {str(spec)!r} has {len(spec.items)} item(s) but {signature} "
            f"takes {len(positional)} positional input(s)."
        )
        raise ConfigurationError(problem, fix)
    if required > len(spec.items):
        missing = ", ".join(names[len(spec.items) : required])
        problem = f"the input spec {str(spec)!r} gives no value for {missing} of {signature}."
        raise ConfigurationError(problem, fix + " Or give those parameters defaults.")
    keyword_only = [
        a.arg
        for a, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
        if default is None
    ]
    if keyword_only:
        problem = f"{signature} needs keyword-only {', '.join(keyword_only)} without defaults."
        raise ConfigurationError(problem, "Give them defaults; inputs are passed positionally.")


def check_file(
    path: Path,
    inputs: str | InputSpec | None = None,
    task: str = "",
    name: str | None = None,
    *,
    seed: int = 0,
    timeout: float = 60.0,
    probes: bool = True,
    device: str = "cpu",
) -> FileCheck:
    """Check the loss in ``path`` against ``inputs``; raise ConfigurationError on usage errors.

    ``device`` is where the sandbox runs the loss: ``cpu``, or a CUDA device, where the
    checks also compare the CUDA value and bf16 autocast with the CPU value.
    """
    if not path.is_file():
        raise ConfigurationError(f"no loss file at {path}.", "Check the path.")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"{path} cannot be read: {exc}.", "Pass a UTF-8 Python file."
        ) from None

    spec = inputs if isinstance(inputs, InputSpec) else parse_spec(inputs)
    loss_name = find_loss_name(source, path, name)
    _check_fits_spec(source, loss_name, spec)

    options: dict[str, object] = {"task": task, "probes": probes}
    # A task that clearly names a catalog loss makes its reference decide: the generic
    # checks cannot see a wrong scale factor such as a missing temperature squared.
    reference = reference_for(task, spec) if task else None
    if reference is not None:
        options["reference"] = {**reference, "authoritative": True}
    logger.debug("checking %s in %s against %s", loss_name, path, spec)
    sandbox = Sandbox(timeout=timeout)
    try:
        report = sandbox.validate(
            source, loss_name, str(spec), seed=seed, options=options, device=device
        )
    finally:
        sandbox.close()
    return FileCheck(path=path, name=loss_name, spec=spec, task=task, report=report)


def format_checks(checks: list[CheckResult]) -> str:
    """Format check results as a table: name, verdict, milliseconds and message."""
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'check':<{width}}  verdict   ms  message"]
    for check in checks:
        verdict = check.verdict if check.authoritative else f"{check.verdict}*"
        message = check.message.splitlines()[0] if check.message else ""
        lines.append(
            f"{check.name:<{width}}  {verdict:<7}{check.seconds * 1000:5.0f}  {message[:160]}"
        )
    if any(not c.authoritative for c in checks):
        lines.append("* evidence only: does not decide the verdict")
    return "\n".join(lines)


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise typer.BadParameter(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def check_command(
    file: Annotated[Path, typer.Argument(help="Python file that defines the loss.")],
    inputs: Annotated[
        str | None,
        typer.Option(help="Input spec, e.g. 'logits:float[N,C] targets:long[N]<C' (the default)."),
    ] = None,
    task: Annotated[
        str, typer.Option(help="What the loss should compute; sets the expected reduction.")
    ] = "",
    name: Annotated[
        str | None, typer.Option(help="Name of the loss function or class (default: the only one).")
    ] = None,
    probes: Annotated[
        bool, typer.Option(help="Run the better-is-lower and trainability probes.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the trial inputs.")] = 0,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds allowed for all checks.")] = 60.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Validate the loss in FILE; exit 0 when every authoritative check passes, 1 when one fails."""
    started = time.perf_counter()
    typer.echo(f"checking {file} against {inputs or parse_spec(None)}", err=True)
    try:
        result = check_file(
            file,
            inputs,
            task,
            name,
            seed=seed,
            timeout=timeout,
            probes=probes,
            device=_resolve_device(device),
        )
    except LossMagicError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        typer.echo(format_checks(result.report.checks))
        seconds = time.perf_counter() - started
        if result.passed:
            typer.echo(f"passed: {result.name} passed every authoritative check ({seconds:.1f} s)")
        else:
            error = classify(result.report.checks)
            detail = f"[{error.error_class}] {error.message}" if error else result.report.message
            typer.echo(f"failed: {result.name}: {detail} ({seconds:.1f} s)")
    raise typer.Exit(0 if result.passed else 1)
