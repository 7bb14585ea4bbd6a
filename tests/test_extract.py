from __future__ import annotations

import ast

import pytest

from lossmagic.exceptions import ExtractionError
from lossmagic.extract import extract_definition, split_code_blocks

PREFILL = (
    "```python\nimport torch\nimport torch.nn.functional as F\n\n\ndef loss_fn(logits, targets):"
)


def function_names(code: str) -> list[str]:
    return [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]


def test_prefilled_continuation_with_closing_fence() -> None:
    text = PREFILL + "\n    return F.cross_entropy(logits, targets)\n```\nThis computes the loss."
    code = extract_definition(text, "loss_fn").code
    assert "return F.cross_entropy(logits, targets)" in code
    assert "import torch.nn.functional as F" in code
    assert "This computes" not in code


def test_missing_closing_fence_and_trailing_prose() -> None:
    text = (
        PREFILL
        + "\n    return F.cross_entropy(logits, targets)\n\nThe function above returns a scalar."
    )
    code = extract_definition(text, "loss_fn").code
    assert function_names(code) == ["loss_fn"]
    assert "The function above" not in code


def test_echoed_prompt_before_code() -> None:
    text = (
        "Task: focal loss\nWrite the Python function `loss_fn(logits, targets)`.\n"
        "def loss_fn(logits, targets) is what you asked for.\n"
        "```python\ndef loss_fn(logits, targets):\n"
        "    return logits.sum() * 0 + targets.float().mean()\n```"
    )
    code = extract_definition(text, "loss_fn").code
    assert "targets.float().mean()" in code


def test_unfenced_code() -> None:
    text = "import torch\n\ndef loss_fn(a, b):\n    return (a - b).abs().mean()\n"
    code = extract_definition(text, "loss_fn").code
    assert "(a - b).abs().mean()" in code
    assert code.startswith("import torch")


def test_first_of_repeated_definitions() -> None:
    text = (
        "```python\ndef loss_fn(a, b):\n    return (a - b).pow(2).mean()\n```\n"
        "Or:\n```python\ndef loss_fn(a, b):\n    return (a - b).abs().mean()\n```"
    )
    code = extract_definition(text, "loss_fn").code
    assert "pow(2)" in code
    assert "abs()" not in code


def test_truncated_definition_is_rejected() -> None:
    text = PREFILL + "\n    probs = F.softmax(logits, dim=-1)\n    weights = (1 - probs"
    with pytest.raises(ExtractionError) as info:
        extract_definition(text, "loss_fn", truncated=True)
    assert "loss_fn" in str(info.value)


def test_truncated_output_keeps_complete_earlier_definition() -> None:
    text = (
        "```python\ndef loss_fn(a, b):\n    return (a - b).abs().mean()\n```\n"
        "Now a test:\n```python\ndef test_loss():\n    x = torch.ra"
    )
    code = extract_definition(text, "loss_fn", truncated=True).code
    assert "(a - b).abs().mean()" in code


def test_trailing_garbage_lines_are_dropped() -> None:
    text = PREFILL + "\n    return F.cross_entropy(logits, targets)\n    Explanation: uses F)"
    extraction = extract_definition(text, "loss_fn")
    assert extraction.code.rstrip().endswith("return F.cross_entropy(logits, targets)")
    assert any("dropped" in note for note in extraction.notes)


def test_missing_imports_are_added() -> None:
    text = "def loss_fn(p, t):\n    return F.mse_loss(p, t) + math.pi * 0\n"
    extraction = extract_definition(text, "loss_fn")
    assert "import torch.nn.functional as F" in extraction.code
    assert "import math" in extraction.code
    compile(extraction.code, "x", "exec")


def test_helper_definitions_are_kept() -> None:
    text = (
        "```python\nimport torch\n\ndef _weights(t):\n    return t.float() + 1\n\n"
        "def loss_fn(p, t):\n    return (p.sum(-1) * _weights(t)).mean()\n```"
    )
    code = extract_definition(text, "loss_fn").code
    assert function_names(code) == ["_weights", "loss_fn"]


def test_wrong_name_raises_with_reason() -> None:
    with pytest.raises(ExtractionError) as info:
        extract_definition("```python\ndef other(a):\n    return a\n```", "loss_fn")
    assert "def loss_fn(" in str(info.value)


def test_empty_output_raises() -> None:
    with pytest.raises(ExtractionError) as info:
        extract_definition("   \n", "loss_fn")
    assert "no text" in str(info.value)


def test_stub_body_is_not_a_definition() -> None:
    with pytest.raises(ExtractionError):
        extract_definition("def loss_fn(a, b):\n    pass\n", "loss_fn")


def test_class_definition_for_module_style() -> None:
    text = (
        "```python\nclass FocalLoss(nn.Module):\n"
        "    def forward(self, x, y):\n        return x.mean()\n```"
    )
    code = extract_definition(text, "FocalLoss").code
    assert "from torch import nn" in code


def test_split_code_blocks_without_fences() -> None:
    assert split_code_blocks("x = 1") == ["x = 1"]
    assert split_code_blocks("a\n```python\nx = 1\n```\nb\n```\ny = 2") == ["x = 1", "y = 2"]
