"""Turning model output into the source of one function (or class), with ``ast``.

Small models echo the prompt, forget closing fences, write prose after the code, define
the function twice or leave out imports. Extraction takes only the model's new text
(after the pre-filled start of its turn), finds the first complete top-level definition
of the requested name, and returns it with the imports and helper definitions it uses::

    >>> output = "```python\\ndef loss_fn(a, b):\\n    return (a - b).abs().mean()\\n```\\nDone."
    >>> print(extract_definition(output, "loss_fn").code)
    import torch
    <BLANKLINE>
    <BLANKLINE>
    def loss_fn(a, b):
        return (a - b).abs().mean()
    <BLANKLINE>
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from lossmagic.exceptions import ExtractionError

__all__ = ["Extraction", "extract_definition", "split_code_blocks"]

# Imports added when a definition uses one of these names without importing it.
_KNOWN_IMPORTS = {
    "torch": "import torch",
    "F": "import torch.nn.functional as F",
    "nn": "from torch import nn",
    "math": "import math",
    "np": "import numpy as np",
}

_FENCE = "```"


@dataclass(frozen=True)
class Extraction:
    """The extracted source and what extraction had to do to get it."""

    code: str
    name: str
    notes: tuple[str, ...] = field(default=())


def split_code_blocks(text: str) -> list[str]:
    """Return the contents of fenced code blocks, or the whole text when it has no fence.

    A block whose closing fence is missing runs to the end of the text.
    """
    lines = text.splitlines()
    if not any(line.lstrip().startswith(_FENCE) for line in lines):
        return [text]

    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if line.lstrip().startswith(_FENCE):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
            continue
        if current is not None:
            current.append(line)
    if current is not None:
        blocks.append("\n".join(current))
    return blocks


def extract_definition(text: str, name: str, truncated: bool = False) -> Extraction:
    """Extract the first complete top-level ``def name`` or ``class name`` from ``text``.

    ``text`` is the model's turn: the pre-filled start plus the new tokens only. When
    ``truncated`` is true (generation hit its token limit), a definition that runs to
    the very end of the text is treated as cut off.

    Raises ExtractionError with the reason when no complete definition exists.
    """
    if not text.strip():
        raise ExtractionError(name, "the model returned no text")

    blocks = split_code_blocks(text)
    last_block = len(blocks) - 1
    found_header = False
    reasons: list[str] = []
    for index, block in enumerate(blocks):
        lines = block.splitlines()
        for start in _definition_starts(lines, name):
            found_header = True
            end = _block_end(lines, start)
            runs_to_end = index == last_block and end == len(lines) and truncated
            node, used_end = _parse_definition(lines, start, end, name)
            if node is None:
                reasons.append(f"the definition at line {start + 1} does not parse")
                continue
            if runs_to_end:
                reasons.append("the output was cut off inside the definition")
                continue
            definition = "\n".join(lines[start:used_end]).rstrip() + "\n"
            return _assemble(definition, node, blocks, name, dropped=end - used_end)

    if not found_header:
        raise ExtractionError(name, f"the output contains no 'def {name}(' or 'class {name}'")
    raise ExtractionError(name, "; ".join(dict.fromkeys(reasons)))


def _definition_starts(lines: list[str], name: str) -> list[int]:
    starts = []
    prefixes = (f"def {name}(", f"async def {name}(", f"class {name}(", f"class {name}:")
    for number, line in enumerate(lines):
        if line.startswith(prefixes):
            # Decorators directly above belong to the definition.
            while number > 0 and lines[number - 1].startswith("@"):
                number -= 1
            starts.append(number)
    return starts


def _block_end(lines: list[str], start: int) -> int:
    """Return the index after the last line of the indented block that starts at ``start``."""
    header = start
    while header < len(lines) - 1 and lines[header].startswith("@"):
        header += 1

    end = header + 1
    for number in range(header + 1, len(lines)):
        line = lines[number]
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            break
        end = number + 1

    while end > header + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _parse_definition(
    lines: list[str], start: int, end: int, name: str
) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None, int]:
    """Parse the longest prefix of ``lines[start:end]`` that is one definition of ``name``."""
    for stop in range(end, start, -1):
        try:
            module = ast.parse("\n".join(lines[start:stop]))
        except SyntaxError:
            continue
        node = module.body[0] if len(module.body) == 1 else None
        if _is_definition_of(node, name):
            return node, stop  # type: ignore[return-value]
        return None, stop
    return None, start


def _is_definition_of(node: ast.stmt | None, name: str) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    return node.name == name and _has_real_body(node)


def _has_real_body(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """Return whether the body does more than ``pass``, ``...`` or a lone docstring."""
    for statement in node.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        return True
    return False


def _assemble(
    definition: str,
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
    blocks: list[str],
    name: str,
    dropped: int,
) -> Extraction:
    notes: list[str] = []
    if dropped:
        notes.append(f"dropped {dropped} trailing line(s) that did not parse")

    imports, helpers = _top_level_context(blocks, name)
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    used |= {
        n.value.id
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }

    needed_helpers = [source for helper, source in helpers.items() if helper in used]
    for source in needed_helpers:
        helper_tree = ast.parse(source)
        used |= {n.id for n in ast.walk(helper_tree) if isinstance(n, ast.Name)}
    if needed_helpers:
        notes.append(f"kept {len(needed_helpers)} helper definition(s)")

    bound: set[str] = set()
    kept_imports: list[str] = []
    for statement, names in imports:
        if names & used and statement not in kept_imports:
            kept_imports.append(statement)
            bound |= names
    for missing in sorted(used - bound):
        if missing in _KNOWN_IMPORTS and _KNOWN_IMPORTS[missing] not in kept_imports:
            kept_imports.append(_KNOWN_IMPORTS[missing])
            notes.append(f"added missing import for {missing!r}")
            bound.add(missing)
    if "torch" not in bound:
        kept_imports.insert(0, "import torch")

    parts = ["\n".join(kept_imports), *needed_helpers, definition]
    return Extraction(
        code="\n\n\n".join(p.strip("\n") for p in parts) + "\n", name=name, notes=tuple(notes)
    )


def _top_level_context(
    blocks: list[str], name: str
) -> tuple[list[tuple[str, set[str]]], dict[str, str]]:
    """Collect top-level imports and helper definitions from every code block."""
    imports: list[tuple[str, set[str]]] = []
    helpers: dict[str, str] = {}
    for block in blocks:
        lines = block.splitlines()
        for number, line in enumerate(lines):
            if line.startswith(("import ", "from ")):
                statement = _parse_import(line)
                if statement is not None:
                    imports.append(statement)
            elif line.startswith("def ") and not line.startswith(f"def {name}("):
                end = _block_end(lines, number)
                node, used_end = _parse_definition(lines, number, end, _def_name(line))
                if node is not None and node.name not in helpers:
                    helpers[node.name] = "\n".join(lines[number:used_end])
    return imports, helpers


def _parse_import(line: str) -> tuple[str, set[str]] | None:
    try:
        module = ast.parse(line.strip())
    except SyntaxError:
        return None
    statement = module.body[0] if module.body else None
    if not isinstance(statement, (ast.Import, ast.ImportFrom)):
        return None
    names = {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    return ast.unparse(statement), names


def _def_name(line: str) -> str:
    return line.removeprefix("def ").split("(", 1)[0].strip()
