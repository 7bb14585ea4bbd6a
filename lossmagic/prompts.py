"""Building generation and repair prompts, fresh from the task each time.

No chat history accumulates between iterations: every prompt contains the task, the
function contract and at most the last attempt with its error, so long sessions cannot
drift away from the format. The assistant turn is pre-filled with the opening of the
code block and the function header, ending on its colon, so that the model continues
the function instead of repeating the prompt.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Literal

from lossmagic.backends.base import ChatMessage
from lossmagic.spec import InputSpec, parse_spec

__all__ = [
    "PromptParts",
    "Style",
    "WorkedExample",
    "build_blame_prompt",
    "build_generation_prompt",
    "build_repair_prompt",
    "build_test_prompt",
    "example_source",
    "function_header",
    "stop_strings",
]

SYSTEM_PROMPT = (
    "You are an expert PyTorch engineer. You write loss functions as one Python code block "
    "that defines exactly the requested function. Use only torch, torch.nn.functional and math. "
    "Do not write tests, prints, examples or explanations."
)

CODE_IMPORTS = "import torch\nimport torch.nn.functional as F"

STOP_STRINGS = ("```",)

# Without the pre-fill the model writes the opening fence itself, so only a closing
# fence on a line of its own may end the turn.
UNFILLED_STOP_STRINGS = ("\n```\n",)


def stop_strings(prefill: str) -> tuple[str, ...]:
    """Return the stop strings for an assistant turn that starts with ``prefill``."""
    return STOP_STRINGS if prefill else UNFILLED_STOP_STRINGS


Style = Literal["function", "module"]
"""What a candidate defines: a plain function, or an ``nn.Module`` class built without arguments."""


@dataclass(frozen=True)
class WorkedExample:
    """A solved task shown to the model before the real one."""

    task: str
    spec: InputSpec
    name: str
    body: str
    """The function body, indented by four spaces, without the header."""


@dataclass(frozen=True)
class PromptParts:
    """A prompt ready for a backend: chat messages plus the assistant pre-fill."""

    messages: tuple[ChatMessage, ...]
    prefill: str


def function_header(name: str, spec: InputSpec, style: Style = "function") -> str:
    """Return ``def NAME(a, b):``, or for the module style the class line and ``forward``."""
    if style == "module":
        return f"class {name}(torch.nn.Module):\n    def forward(self, {', '.join(spec.names)}):"
    return f"def {name}({', '.join(spec.names)}):"


def _contract_text(task: str, name: str, spec: InputSpec, style: Style = "function") -> str:
    if style == "module":
        what = (
            f"the PyTorch module class `{name}(torch.nn.Module)`, whose constructor takes no "
            f"arguments (give hyperparameters defaults) and whose "
            f"`forward(self, {', '.join(spec.names)})` computes the loss"
        )
    else:
        what = f"the Python function `{name}({', '.join(spec.names)})`"
    return (
        f"Task: {task.strip()}\n\n"
        f"Write {what}.\n"
        f"Its inputs, passed positionally in this order:\n{spec.describe()}\n\n"
        "It must return the loss as a 0-dim torch.Tensor (reduce over the batch, "
        "usually with the mean) that is differentiable with respect to every float input. "
        "Do not modify the inputs in place."
    )


def _code_block(name: str, spec: InputSpec, body: str, style: Style = "function") -> str:
    if style == "module":
        body = textwrap.indent(body.rstrip(), "    ")
    header = function_header(name, spec, style)
    return f"```python\n{CODE_IMPORTS}\n\n\n{header}\n{body.rstrip()}\n```"


def example_source(example: WorkedExample, style: Style = "function") -> str:
    """Return a worked example as the source of a module that defines it."""
    return (
        _code_block(example.name, example.spec, example.body, style)
        .removeprefix("```python\n")
        .removesuffix("```")
    )


def _prefill(name: str, spec: InputSpec, style: Style = "function") -> str:
    return f"```python\n{CODE_IMPORTS}\n\n\n{function_header(name, spec, style)}"


def build_generation_prompt(
    task: str,
    name: str,
    spec: InputSpec,
    examples: tuple[WorkedExample, ...] = (),
    style: Style = "function",
) -> PromptParts:
    """Build the prompt for a fresh candidate, with worked examples as earlier turns.

    ``style="module"`` asks for an ``nn.Module`` class named ``name``; the worked
    examples are then shown as classes too.
    """
    messages = [ChatMessage("system", SYSTEM_PROMPT)]
    for example in examples:
        messages.append(
            ChatMessage("user", _contract_text(example.task, example.name, example.spec, style))
        )
        messages.append(
            ChatMessage("assistant", _code_block(example.name, example.spec, example.body, style))
        )
    messages.append(ChatMessage("user", _contract_text(task, name, spec, style)))
    return PromptParts(tuple(messages), _prefill(name, spec, style))


def build_repair_prompt(
    task: str,
    name: str,
    spec: InputSpec,
    code: str,
    error: str,
    instruction: str = "",
    examples: tuple[WorkedExample, ...] = (),
    style: Style = "function",
) -> PromptParts:
    """Build the prompt that asks for a corrected version of a failing candidate."""
    base = build_generation_prompt(task, name, spec, examples, style)
    what = "class" if style == "module" else "function"
    advice = instruction.strip() or "Fix the error and keep what the task asks for."
    repair = (
        f"{_contract_text(task, name, spec, style)}\n\n"
        f"This attempt failed:\n```python\n{code.strip()}\n```\n"
        f"Error: {error.strip()}\n\n{advice} Write the corrected {what}."
    )
    messages = (*base.messages[:-1], ChatMessage("user", repair))
    return PromptParts(messages, base.prefill)


TEST_SYSTEM_PROMPT = (
    "You are an expert PyTorch engineer who writes unit tests. You write small test functions "
    "with plain asserts, each building its own small input tensors by hand."
)

_TEST_EXAMPLE_TASK = "mean absolute error for regression"
_TEST_EXAMPLE_SPEC = "predictions:float[N,1] targets:float[N,1]"
_TEST_EXAMPLE = """```python
import torch
import torch.nn.functional as F


def test_zero_when_predictions_equal_targets():
    targets = torch.tensor([[0.5], [-1.0], [2.0]])
    assert loss_fn(targets.clone(), targets).item() < 1e-6


def test_known_value():
    predictions = torch.tensor([[1.0], [3.0]])
    targets = torch.tensor([[0.0], [1.0]])
    assert abs(loss_fn(predictions, targets).item() - 1.5) < 1e-4


def test_returns_scalar():
    predictions = torch.randn(4, 1)
    targets = torch.randn(4, 1)
    assert loss_fn(predictions, targets).dim() == 0
```"""


def _test_request(task: str, name: str, spec: InputSpec) -> str:
    return (
        f"Task of the loss: {task.strip()}\n\n"
        f"Write 3 pytest-style test functions for `{name}({', '.join(spec.names)})`, "
        "which is already defined; do not define it. "
        f"Its inputs, passed positionally in this order:\n{spec.describe()}\n"
        "It returns the loss as a 0-dim tensor. Test known values computed by hand, "
        "the value at a perfect prediction, and that better predictions give a lower loss."
    )


def build_test_prompt(task: str, name: str, spec: InputSpec) -> PromptParts:
    """Build the prompt for generated tests, from the task and the signature only."""
    example_request = _test_request(_TEST_EXAMPLE_TASK, name, parse_spec(_TEST_EXAMPLE_SPEC))
    messages = (
        ChatMessage("system", TEST_SYSTEM_PROMPT),
        ChatMessage("user", example_request),
        ChatMessage("assistant", _TEST_EXAMPLE.replace("loss_fn", name)),
        ChatMessage("user", _test_request(task, name, spec)),
    )
    return PromptParts(messages, f"```python\n{CODE_IMPORTS}\n\n\ndef test_")


def build_blame_prompt(task: str, code: str, test: str, failure: str) -> PromptParts:
    """Build the prompt that asks for a one-word blame: loss, test or unknown."""
    question = (
        f"Task of the loss: {task.strip()}\n\n"
        f"The loss function:\n```python\n{code.strip()}\n```\n\n"
        f"A test of it:\n```python\n{test.strip()}\n```\n\n"
        f"The test failed: {failure.strip()}\n\n"
        "Which one is wrong? Answer with one word: loss, test or unknown."
    )
    messages = (
        ChatMessage("system", "You review PyTorch code and answer with exactly one word."),
        ChatMessage("user", question),
    )
    return PromptParts(messages, "")
