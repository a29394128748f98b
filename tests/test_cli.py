"""`tinygrad-edu demo` (python -m tinygrad_edu demo): it trains, writes its output folder, and
bad flags or bad data files give one line and exit status 2, never a traceback."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

import tinygrad_edu as tg
from tinygrad_edu.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = ["--epochs", "8", "--no-progress", "--seed", "1"]


def run(argv, capsys):
    status = main(["demo", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def accuracies(out: str) -> tuple:
    """(train, test) from the demo's last line about them, as fractions."""
    train, test = re.search(r"train accuracy ([\d.]+)%, test accuracy ([\d.]+)%", out).groups()
    return float(train) / 100, float(test) / 100


def test_the_default_demo_trains_the_learners_network_and_writes_everything(tmp_path, capsys):
    status, out, err = run(["--out", str(tmp_path), *QUICK], capsys)
    assert status == 0, err
    assert "64-25-10, sigmoid hidden layer, sigmoid outputs + squared error + L2" in out
    train, test = accuracies(out)
    assert train > 0.85 and test > 0.85  # eight epochs of the digits already separate most classes
    assert (tmp_path / "graph.svg").read_text().count("<svg") == 1
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Training diagnostics" in (tmp_path / "diagnostics.txt").read_text()
    assert "dL/d0.weight" in (tmp_path / "explain.txt").read_text()
    state = tg.load(tmp_path / "model.npz")
    assert sorted(state) == ["0.bias", "0.weight", "2.bias", "2.weight"] and state["0.weight"].shape == (25, 64)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_the_same_seed_gives_the_same_model(tmp_path, capsys):
    for folder in ("a", "b"):
        assert run(["--out", str(tmp_path / folder), *QUICK], capsys)[0] == 0
    a, b = tg.load(tmp_path / "a" / "model.npz"), tg.load(tmp_path / "b" / "model.npz")
    assert all(np.array_equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--loss", "cross-entropy", "--optimizer", "adam", "--activation", "relu"], "softmax + cross-entropy"),
        (["--optimizer", "lbfgs", "--hidden", "12", "--epochs", "40"], "64-12-10"),
        (["--optimizer", "cg", "--l2", "0", "--epochs", "40"], ", cg,"),
        (["--activation", "tanh", "--init", "pytorch", "--batch-size", "16"], "tanh hidden layer"),
    ],
)
def test_flags_change_the_network_and_training(tmp_path, capsys, flags, says):
    status, out, err = run(["--out", str(tmp_path), *QUICK, *flags], capsys)
    assert status == 0, err
    assert says in out and (tmp_path / "model.npz").exists()
    assert accuracies(out)[0] > 0.8


def test_the_second_learners_init_is_diagnosed(tmp_path, capsys):
    status, out, _ = run(["--out", str(tmp_path), *QUICK, "--init", "rand", "--hidden", "64"], capsys)
    assert status == 0
    report = (tmp_path / "diagnostics.txt").read_text()
    assert "every initial weight is >= 0" in report and "diagnostics:" in out


def test_a_mat_file_in_the_course_layout(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 11, 200)  # 1..10, 10 meaning the digit 0
    x = np.eye(10)[labels % 10].repeat(4, axis=1) + 0.1 * rng.random((200, 40))
    scipy.io.savemat(tmp_path / "ex4data1.mat", {"X": x, "y": labels.reshape(-1, 1)})
    status, out, err = run(["--data", str(tmp_path / "ex4data1.mat"), "--out", str(tmp_path / "out"),
                            "--optimizer", "lbfgs", "--epochs", "40", "--l2", "0.1", "--no-progress"], capsys)
    assert status == 0, err
    assert "(labels 1..10: 10 read as the digit 0)" in out and "200 samples of 40 features, 10 classes" in out
    assert accuracies(out)[1] > 0.9


@pytest.mark.parametrize(
    "argv, says",
    [
        (["demo", "--epochs", "0"], "argument --epochs: must be positive, got 0"),
        (["demo", "--lr", "fast"], "argument --lr: expected a float, got 'fast'"),
        (["demo", "--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
        (["demo", "--test-size", "1.5"], "argument --test-size: must be between 0 and 1, got 1.5"),
        (["demo", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["demo", "--data", "/no/such/file.mat"], "cannot use --data /no/such/file.mat"),
        (["train"], "invalid choice: 'train'"),
    ],
)
def test_bad_flags_and_files_give_one_line_and_status_2(argv, says, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], captured.err
    assert lines[0].startswith("tinygrad-edu demo: error:")


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda path: path.write_text("not a mat file"), "not a MATLAB .mat file"),
        (lambda path: scipy.io.savemat(path, {"features": np.ones((5, 2))}), "'X'"),
        (lambda path: scipy.io.savemat(path, {"X": np.ones((5, 2)), "y": -np.ones((5, 1))}), "class indices"),
    ],
)
def test_a_bad_data_file_is_one_line_too(tmp_path, capsys, make, says):
    path = tmp_path / "bad.mat"
    make(path)
    status, _, err = run(["--data", str(path), "--out", str(tmp_path / "out")], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    status, _, err = run(["--out", str(tmp_path / "taken"), *QUICK], capsys)
    assert status == 2 and "cannot create the output folder" in err


def test_python_dash_m_runs_it_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tinygrad_edu", "demo", "--hidden", "-3"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "tinygrad-edu demo: error: argument --hidden: must be positive, got -3"
    shown = subprocess.run([sys.executable, "-m", "tinygrad_edu", "demo", "--help"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "--batch-size" in shown.stdout
