"""The static screen: reject candidate code that reaches for files, processes or introspection.

It reads the AST before anything runs. It is a speed bump with clear messages, not the
defence: the sandbox process boundary is. Imports are limited to an allowlist, and calls,
names and attributes that load code, start processes, touch files or the network, or walk
interpreter frames are rejected.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from lossmagic.checks.base import CheckResult

__all__ = ["ScreenFinding", "screen_check", "screen_source"]

ALLOWED_MODULES = frozenset(
    {"__future__", "torch", "math", "typing", "functools", "numbers", "numpy"}
)
"""Top-level modules a candidate may import."""

BLOCKED_SUBMODULES = frozenset(
    {
        "torch.hub",
        "torch.multiprocessing",
        "torch.distributed",
        "torch.utils.data",
        "torch.utils.cpp_extension",
        "torch.utils.model_zoo",
        "torch.utils.tensorboard",
        "torch.utils.benchmark",
        "torch.package",
        "torch.serialization",
        "torch.onnx",
        "torch.library",
        "torch.jit",
        "torch.compiler",
        "torch._dynamo",
        "torch._inductor",
        "numpy.ctypeslib",
        "numpy.distutils",
        "numpy.f2py",
        "numpy.testing",
    }
)
"""Submodules of allowed modules that load code, start processes, or touch files or network."""

BLOCKED_BUILTINS = frozenset(
    {
        "__import__",
        "breakpoint",
        "compile",
        "delattr",
        "eval",
        "exec",
        "exit",
        "globals",
        "help",
        "input",
        "locals",
        "memoryview",
        "open",
        "quit",
        "setattr",
        "vars",
    }
)

BLOCKED_ATTRIBUTES = frozenset(
    {
        # Files and code loading.
        "load",
        "save",
        "from_file",
        "fromfile",
        "tofile",
        "memmap",
        "load_library",
        "hub",
        "compile",
        "DataLoader",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromregex",
        "savez",
        "savez_compressed",
        "ctypeslib",
        # Modules that allowed ones re-export (typing.sys, numpy.os), and process control.
        "sys",
        "os",
        "modules",
        "builtins",
        "subprocess",
        "system",
        "popen",
        "spawn",
        "fork",
        "importlib",
        "import_module",
        # Frames, code objects and tracebacks.
        "_getframe",
        "tb_frame",
        "tb_next",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "gi_frame",
        "cr_frame",
        "ag_frame",
        "co_code",
    }
)
"""Attribute names rejected on any object, since the screen cannot know the object's type."""

ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__init__", "__name__"})


@dataclass(frozen=True)
class ScreenFinding:
    """One construct the screen rejects, with its line in the candidate."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _module_finding(module: str) -> str | None:
    root = module.split(".")[0]
    if root not in ALLOWED_MODULES:
        allowed = ", ".join(sorted(ALLOWED_MODULES - {"__future__"}))
        return f"import of {module!r} is not allowed; use only {allowed}"
    for blocked in BLOCKED_SUBMODULES:
        if module == blocked or module.startswith(blocked + "."):
            return (
                f"import of {module!r} is not allowed because it loads code, starts "
                "processes or touches files"
            )
    return None


def _imported_names(tree: ast.AST) -> set[str]:
    """Return the names that imports bind, such as ``torch``, ``F`` or ``nn``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Screen(ast.NodeVisitor):
    def __init__(self, modules: set[str]) -> None:
        self.findings: list[ScreenFinding] = []
        self.modules = modules

    def _add(self, node: ast.AST, message: str) -> None:
        self.findings.append(ScreenFinding(getattr(node, "lineno", 0), message))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            message = _module_finding(alias.name)
            if message:
                self._add(node, message)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._add(node, "relative imports are not allowed")
            return
        module = node.module or ""
        message = _module_finding(module)
        if message:
            self._add(node, message)
            return
        for alias in node.names:
            message = _module_finding(f"{module}.{alias.name}")
            if message:
                self._add(node, message)
            elif alias.name in BLOCKED_ATTRIBUTES or _is_dunder(alias.name):
                self._add(node, f"importing {alias.name!r} from {module!r} is not allowed")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in BLOCKED_BUILTINS:
            self._add(node, f"{node.id!r} is not allowed in a loss function")
        elif _is_dunder(node.id) and node.id != "__name__":
            self._add(node, f"the name {node.id!r} is not allowed")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in BLOCKED_ATTRIBUTES:
            self._add(node, f"the attribute {node.attr!r} is not allowed in a loss function")
        elif _is_dunder(node.attr) and node.attr not in ALLOWED_DUNDER_ATTRIBUTES:
            self._add(node, f"the dunder attribute {node.attr!r} is not allowed")
        self.generic_visit(node)

    def _check_targets(self, node: ast.AST, targets: list[ast.expr]) -> None:
        """Reject changes to imported modules, which could patch the functions checks use."""
        for target in targets:
            for part in ast.walk(target):
                root = _root_name(part) if isinstance(part, ast.Attribute) else None
                if root in self.modules:
                    self._add(node, f"changing the imported module {root!r} is not allowed")
                    return

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        if isinstance(function, ast.Name) and function.id in ("getattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self._add(node, f"{function.id}() needs a literal attribute name here")
            elif _is_dunder(name.value) or name.value in BLOCKED_ATTRIBUTES:
                self._add(node, f"{function.id}() of {name.value!r} is not allowed")
        for keyword in node.keywords:
            if keyword.arg == "num_workers":
                self._add(node, "worker processes (num_workers) are not allowed")
        self.generic_visit(node)


def screen_source(source: str) -> list[ScreenFinding]:
    """Return what the screen rejects in ``source``; empty when it passes or does not parse.

    Code that does not parse is left to the sandbox, whose compile check reports the syntax
    error with its line.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    screen = _Screen(_imported_names(tree))
    screen.visit(tree)
    return screen.findings


def screen_check(source: str) -> CheckResult | None:
    """Return a failed ``screen`` check for ``source``, or None when the screen passes it."""
    findings = screen_source(source)
    if not findings:
        return None
    shown = "; ".join(str(finding) for finding in findings[:3])
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    message = f"disallowed code: {shown}{more}. Rewrite the loss with torch and math only"
    evidence = {"findings": [{"line": f.line, "message": f.message} for f in findings]}
    return CheckResult("screen", "fail", message, evidence)
