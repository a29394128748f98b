"""Each script in examples/ runs with a small budget, writes only where it is told, and shows
what it claims to show (the numbers its printout and the docs rely on)."""
import pathlib
import runpy

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    """The example's functions, without running it as a script (its main takes argv).

    The examples that train on the bundled digits need scikit-learn (the examples extra)."""
    source = (ROOT / "examples" / f"{name}.py").read_text()
    if "load_digits" in source:
        pytest.importorskip("sklearn", reason=f"examples/{name}.py needs scikit-learn (the examples extra)")
    if "matplotlib" in source or ".plot(" in source:
        pytest.importorskip("matplotlib", reason=f"examples/{name}.py needs matplotlib (the examples extra)")
    return runpy.run_path(str(ROOT / "examples" / f"{name}.py"), run_name=f"example_{name}")


def test_first_learner_backprop_is_right_and_predict_is_the_bug(capsys):
    out = load("first_learner")["main"]([])  # the default budget: 300 full-batch iterations
    printed = capsys.readouterr().out
    report = out["report"]
    assert report.ok and [row.kind for row in report.rows] == ["ok"] * 4
    assert "all gradients match" in printed
    # their predict: the (m, 1) == (m,) table gives about 1/10 whatever the network does
    assert abs(out["buggy_accuracy"] - 0.1) < 0.02
    assert out["fixed_accuracy"] >= 0.9
    assert "== of shapes (1347, 1) and (1347,)" in out["caught"]
    assert "a == b has shape (1347, 1347)" in printed
    # the same network in tinygrad_edu, gradients from autograd
    assert out["train_accuracy"] >= 0.9 and out["test_accuracy"] >= 0.85


def test_initialisation_rand_stalls_with_warnings_and_xavier_has_none(tmp_path, capsys):
    out = load("initialisation")["main"](["--steps", "40", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    rows = out["rows"]
    assert set(rows) == {"rand", "normal", "xavier", "kaiming", "xavier4"}
    assert "all_positive_init" in rows["rand"]["kinds"]
    assert {"saturation", "vanishing_gradient"} & set(rows["rand"]["kinds"])
    assert rows["xavier"]["kinds"] == [] and rows["kaiming"]["kinds"] == [] and rows["xavier4"]["kinds"] == []
    assert "high_first_loss" in rows["normal"]["kinds"]
    # all-positive weights: the gradient reaching the first layer is far weaker than with Xavier
    ratio = {name: row["grad_rms"][0] / row["grad_rms"][-1] for name, row in rows.items()}
    assert ratio["rand"] < 0.03 < ratio["xavier"]
    assert rows["normal"]["first_loss"] > 1.5 * np.log(10) > rows["xavier"]["first_loss"]
    assert rows["xavier"]["final_loss"] < rows["rand"]["final_loss"]
    assert out["plot"] == tmp_path / "init_comparison.png"
    assert out["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Monitor warnings" in printed and f"{rows['rand']['final_loss']:.2f}" in out["explanation"]


def test_lbfgs_and_cg_need_far_fewer_iterations_than_gradient_descent(capsys):
    out = load("lbfgs")["main"](["--maxiter", "20", "--gd-iterations", "600"])
    results = out["results"]
    gd = results["gradient descent"]["iterations_to_target"]
    gd = 600 if gd is None else gd  # not reached within its budget: even further behind
    for method in ("L-BFGS-B", "CG"):
        assert results[method]["iterations_to_target"] is not None
        assert 2 * results[method]["iterations_to_target"] < gd
    # counting every loss-and-gradient evaluation, L-BFGS is still well ahead
    assert results["L-BFGS-B"]["evaluations_to_target"] < gd
    assert results["L-BFGS-B"]["final_loss"] <= out["target"]
    assert "iterations (loss-and-gradient evaluations)" in capsys.readouterr().out


def test_draw_and_explain_writes_both_drawings(tmp_path, capsys):
    out = load("draw_and_explain")["main"](["--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert [path.name for path in out["paths"]] == ["graph.svg", "graph_folded.svg"]
    for path in out["paths"]:
        assert path.parent == tmp_path and "<svg" in path.read_text()
    assert "0.weight" in out["paths"][0].read_text()
    assert "0: Linear" in out["paths"][1].read_text()  # folded: one box per layer
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert f"dL/d{name} = " in out["explanation"]
    assert "dL/d0.weight = " in printed and "How to read it" in printed and str(tmp_path) in printed


def test_three_ways_agree(capsys):
    out = load("three_ways")["main"](["--steps", "300"])
    assert max(out["first_step"].values()) < 1e-10
    assert max(out["trained"].values()) < 1e-10
    losses = out["losses"]
    for name in ("autograd", "modules"):
        assert np.allclose(losses[name], losses["hand"], rtol=0, atol=1e-10)
    assert losses["hand"][-1] < 0.5 * losses["hand"][0]
    assert "max |difference|" in capsys.readouterr().out
