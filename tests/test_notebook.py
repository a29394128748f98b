"""examples/learner_000.ipynb runs from top to bottom in a real Jupyter kernel (nbclient + ipykernel,
the `test` extra), and its reports, tables and pictures display as HTML, SVG and PNG, not as text."""
import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (pip install nbclient)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (the `test` extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (the `test` extra)")
pytest.importorskip("matplotlib", reason="the notebook draws its training curves with matplotlib (the `examples` extra)")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "learner_000.ipynb"


def test_the_learner_000_notebook_runs_without_errors_and_displays_rich_output(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's tinygrad_edu
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    kinds = [set(output.get("data", {})) for output in outputs]
    html = [output["data"]["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    assert any(text.startswith("<div><p><b>check_backprop: all gradients match") for text in html)
    assert any("the first in backward order is &#x27;dz2&#x27;" in text for text in html)
    assert any(text.startswith("<pre>Forward (") for text in html)  # explain, as formatted text
    assert any(text.startswith("<div><p><b>summary of Sequential") for text in html)
    assert any("image/svg+xml" in kind for kind in kinds)  # the drawing, inline
    assert sum("image/png" in kind for kind in kinds) == 2  # the two training curves
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "BroadcastError: == of shapes (400, 1) and (400,)" in printed
