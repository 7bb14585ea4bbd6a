"""The notebooks in notebooks/, executed with nbclient in a real kernel with small settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .conftest import REPO

NOTEBOOKS = REPO / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(name: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Execute a notebook in ``folder`` with the small settings and return it with outputs."""
    monkeypatch.setenv("LOSSMAGIC_NOTEBOOK_SMALL", "1")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    try:
        client.execute()
    except CellExecutionError:
        if name != "CIFAR-10.ipynb":
            raise
    return notebook


def text_of(cell: nbformat.NotebookNode) -> str:
    """Return a code cell's printed text and plain-text results, joined."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def lossgen_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.source.startswith("%%lossgen"))


def check_run_outputs(notebook: nbformat.NotebookNode, loss_name: str) -> str:
    """Check the %%lossgen panel and the generated-or-fallback message; return all text."""
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]
    assert errors == []

    panel = next(o for o in lossgen_cell(notebook).outputs if WIDGET_VIEW in o.get("data", {}))
    assert "Iteration 1 (" in panel["data"]["text/plain"]
    assert "<details><summary>Iteration 1 (" in panel["data"]["text/html"]

    text = "\n".join(text_of(c) for c in notebook.cells if c.cell_type == "code")
    if f"Defined {loss_name}()" in text:
        assert f"Training with the generated loss {loss_name}()" in text
        assert f"generated {loss_name}" in text
    else:
        assert "Nothing was defined" in text
        assert "Fallback: the comparison below trains with the standard loss only." in text
    return text


@pytest.mark.model
def test_mnist_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute("MNIST.ipynb", tmp_path, monkeypatch)
    text = check_run_outputs(notebook, "digit_loss")
    assert "1600 training and 400 test digits" in text
    assert "standard F.cross_entropy       test accuracy" in text
    assert "cross-entropy loss with label smoothing" in text.split("started")[-1]


@pytest.mark.model
def test_code_testing_notebook_shows_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = execute("code_testing_example.ipynb", tmp_path, monkeypatch)
    text = check_run_outputs(notebook, "l1_loss")
    assert "return (predictions - targets).abs()" in text
    assert "scalar: returned shape" in text
    assert "Step 3: error class 'non_scalar', decision" in text
    assert "Step 4: iteration 2 (" in text
    assert "standard F.l1_loss" in text


def test_cifar_notebook_stops_cleanly_without_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed; the data path needs the model (see MNIST test)")
    notebook = execute("CIFAR-10.ipynb", tmp_path, monkeypatch)

    data_cell = next(c for c in notebook.cells if "CIFAR10(" in c.source)
    assert "CIFAR-10 is unavailable on this machine, so this notebook stops here." in text_of(
        data_cell
    )
    (error,) = [o for o in data_cell.outputs if o["output_type"] == "error"]
    assert error["ename"] == "DataUnavailable"
    assert error["traceback"] == []
    later = notebook.cells[notebook.cells.index(data_cell) + 1 :]
    assert all(c.get("execution_count") is None for c in later if c.cell_type == "code")
