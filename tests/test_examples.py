"""The README's code and the examples run as written (tiny budgets), and do what they say."""
import pathlib
import re
import runpy
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # the tour writes a checkpoint
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["x"].grad.tolist() == [2.0, 4.0, 6.0]
    assert 0.0 <= namespace["accuracy"] <= 1.0
    assert namespace["w1"].grad.shape == (400, 25)
    # the nn tour: it trains, and what was saved is what the model holds
    model = namespace["model"]
    assert namespace["loss"].item() < 0.5 * np.log(10)  # an untrained 10-class model scores ~log(10)
    import tinygrad_edu as tg

    saved = tg.load(tmp_path / "model.npz")
    assert list(saved) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert np.array_equal(saved["0.weight"], model[0].weight.data)
    # the see-inside tour: its tools ran and said what they should
    printed = capsys.readouterr().out
    assert namespace["report"].ok
    assert "== of shapes (200, 1) and (200,)" in printed
    assert re.search(r"dL/d0\.weight = \(dL/dv\d+\)\.T @ c1 +\(25, 200\) @ \(200, 400\) -> \(25, 400\)", printed)
    assert "<svg" in (tmp_path / "graph.svg").read_text()
    assert "1 (Sigmoid)" in printed and "Training diagnostics: 5 step(s)" in printed


def test_readme_matmul_error_text_is_what_the_engine_says():
    import tinygrad_edu as tg

    shown = re.search(r"ValueError: (MatMul.*?\?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    with pytest.raises(ValueError) as error:
        tg.Tensor(np.ones((200, 400))) @ tg.Tensor(np.ones((25, 400)))
    assert " ".join(shown.group(1).split()) == str(error.value)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    marker = "# 2. install, then run the whole test suite"
    assert marker in readme and marker in ci
    assert "pytest" in readme.split(marker)[1].splitlines()[1]


def test_learner_network_example_learns(monkeypatch):
    pytest.importorskip("sklearn", reason="the examples extra is not installed")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        example = runpy.run_path(str(ROOT / "examples" / "learner_network.py"))
    finally:
        sys.path.pop(0)
    history, train_accuracy, _ = example["train"](iterations=300, lr=2.0)
    assert history[-1] < 0.6 * history[0]
    assert train_accuracy > 0.5  # far above the 10% of an untrained network


def test_scalar_demo_agrees_three_ways():
    example = runpy.run_path(str(ROOT / "examples" / "scalar_demo.py"))
    rows = example["main"]()
    for name in ("autograd", "finite differences"):
        for key in ("w", "b"):
            assert rows[name][key] == pytest.approx(rows["by hand"][key], rel=1e-6)
