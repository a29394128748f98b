"""`tinygrad-edu demo` (python -m tinygrad_edu demo): it trains, writes its output folder, and
bad flags or bad data files give one line and exit status 2, never a traceback."""
import importlib.util
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


def needs(module: str, what: str):
    """Skip when `module`, from the examples extra, is missing (`pip install -e .[test]` alone)."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"{what} needs {module}, from the examples extra")


DIGITS = needs("sklearn", "the default data (scikit-learn's 8x8 digits)")
PLOTS = needs("matplotlib", "curves.png")


def run(argv, capsys):
    status = main(["demo", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def accuracies(out: str) -> tuple:
    """(train, test) from the demo's last line about them, as fractions."""
    train, test = re.search(r"train accuracy ([\d.]+)%, test accuracy ([\d.]+)%", out).groups()
    return float(train) / 100, float(test) / 100


@DIGITS
@PLOTS
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


@DIGITS
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
@DIGITS
def test_flags_change_the_network_and_training(tmp_path, capsys, flags, says):
    status, out, err = run(["--out", str(tmp_path), *QUICK, *flags], capsys)
    assert status == 0, err
    assert says in out and (tmp_path / "model.npz").exists()
    assert accuracies(out)[0] > 0.8


@pytest.mark.parametrize("hidden", ["1000000000", "100000,100000"])
def test_a_network_too_large_for_memory_is_refused_before_training(tmp_path, capsys, hidden):
    scipy.io.savemat(tmp_path / "small.mat", {"X": np.ones((20, 4)), "y": np.arange(20).reshape(-1, 1) % 2})
    status, out, err = run(["--data", str(tmp_path / "small.mat"), "--out", str(tmp_path / "out"),
                            "--hidden", hidden], capsys)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and f"--hidden {hidden} needs about" in lines[0]
    assert "parameters), more than this machine's" in lines[0] and "trained" not in out


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
        (["demo", "--seed", "-1"], "argument --seed: must not be negative, got -1"),
        (["demo", "--l2", "-0.5"], "argument --l2: must not be negative, got -0.5"),
        (["demo", "--l2", "nan"], "argument --l2: must be a finite number, got nan"),
        (["demo", "--lr", "inf"], "argument --lr: must be a finite number, got inf"),
        (["demo", "--hidden", "128,0"], "must be positive, got 0 (in '128,0': give unit counts like 25"),
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


@DIGITS
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


# ---- the files it writes, under faults ------------------------------------------------------
TINY = ["--epochs", "1", "--hidden", "6", "--no-progress", "--batch-size", "128"]


def hidden_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@DIGITS
def test_an_output_folder_that_cannot_take_files_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.npz").mkdir()  # a folder where the checkpoint should go
    status, out, err = run(["--out", str(tmp_path / "out"), *TINY], capsys)
    assert status == 2 and "model.npz: something other than a file is in the way" in err
    assert "trained" not in out
    if os.path.isdir("/sys/kernel") and not os.access("/sys/kernel", os.W_OK | os.X_OK):
        status, out, err = run(["--out", "/sys/kernel", *TINY], capsys)
        assert status == 2 and "cannot write to the output folder /sys/kernel" in err and "trained" not in out


def fail_writing(monkeypatch, file_name, error):
    """Make the fsync of the temporary for `file_name` fail, as a full disk would."""
    from tinygrad_edu import _files

    real_fsync = os.fsync

    def fsync(handle):
        if f".{file_name}." in os.readlink(f"/proc/self/fd/{handle}"):
            raise error
        return real_fsync(handle)

    monkeypatch.setattr(_files.os, "fsync", fsync)


@DIGITS
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the file being written through /proc")
@pytest.mark.parametrize("file_name", ["explain.txt", "model.npz"])
def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, capsys, monkeypatch, file_name):
    import errno

    out = tmp_path / "out"
    out.mkdir()
    (out / "model.npz").write_bytes(b"the previous checkpoint")
    fail_writing(monkeypatch, file_name, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    status, _, err = run(["--out", str(out), *TINY], capsys)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"cannot write {out / file_name}: No space left on device" in lines[0]
    assert hidden_files(out) == []
    assert (out / "model.npz").read_bytes() == b"the previous checkpoint"


@DIGITS
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the file being written through /proc")
def test_an_interrupt_while_writing_exits_130_without_temporaries(tmp_path, capsys, monkeypatch):
    fail_writing(monkeypatch, "model.npz", KeyboardInterrupt())
    status, _, err = run(["--out", str(tmp_path), *TINY], capsys)
    assert status == 130 and "interrupted" in err
    assert hidden_files(tmp_path) == [] and not (tmp_path / "model.npz").exists()


@DIGITS
def test_planted_symlinks_at_the_old_temporary_names_are_not_followed(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".explain.txt.tmp", ".curves.png.tmp.png", ".diagnostics.txt.tmp", ".graph.dot.tmp"):
        (out / name).symlink_to(victim)
    (out / "model.npz").symlink_to(victim)  # and at a target: the link is replaced, not written through
    status, _, err = run(["--out", str(out), *TINY], capsys)
    assert status == 0, err
    assert victim.read_text() == "precious"
    assert not (out / "model.npz").is_symlink() and sorted(tg.load(out / "model.npz")) == [
        "0.bias", "0.weight", "2.bias", "2.weight"]


@DIGITS
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to inf is the point
def test_a_diverging_run_fails_in_one_line_and_keeps_the_old_checkpoint(tmp_path, capsys):
    (tmp_path / "model.npz").write_bytes(b"the previous checkpoint")
    status, out, err = run(["--out", str(tmp_path), *TINY, "--lr", "1e30"], capsys)
    lines = err.strip().splitlines()
    assert status == 1 and len(lines) == 1, err
    assert "became" in lines[0] and "smaller --lr" in lines[0] and "model.npz was not written" in lines[0]
    assert (tmp_path / "model.npz").read_bytes() == b"the previous checkpoint"
    assert "test accuracy" not in out


def test_data_that_is_not_finite_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "nan.mat"
    scipy.io.savemat(path, {"X": np.full((20, 4), np.nan), "y": np.arange(20).reshape(-1, 1) % 2})
    status, out, err = run(["--data", str(path), "--out", str(tmp_path / "out"), *TINY], capsys)
    assert status == 2 and "X holds 80 NaN or infinite values of 80" in err and "trained" not in out
    assert not (tmp_path / "out" / "model.npz").exists()


def test_a_mat_file_that_crashes_scipy_is_one_line_and_status_2(tmp_path, capsys):
    from test_data import corruptions, first_case_that_crashes_scipy, flipped

    contents = {"X": np.arange(12.0).reshape(4, 3), "y": np.array([[1], [2], [3], [4]])}
    scipy.io.savemat(tmp_path / "good.mat", contents)
    original = (tmp_path / "good.mat").read_bytes()
    cases = corruptions(original, 2000)
    crash = cases[first_case_that_crashes_scipy(tmp_path, original, cases)]
    (tmp_path / "bad.mat").write_bytes(flipped(original, *crash))
    status, _, err = run(["--data", str(tmp_path / "bad.mat"), "--out", str(tmp_path / "out")], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and "cannot use --data" in err, err


# ---- an honest demo -------------------------------------------------------------------------
@DIGITS
@PLOTS
def test_the_default_run_checks_its_gradients_and_says_what_its_files_show(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    titles = []
    real_savefig = Figure.savefig

    def savefig(figure, *args, **kwargs):
        titles.extend(axes.get_title() for axes in figure.axes)
        return real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    status, out, err = run(["--out", str(tmp_path), *TINY], capsys)
    assert status == 0, err
    assert re.search(r"gradient check: autograd's gradients match central differences at \d+ sampled", out)
    assert "first 8 training samples" in (tmp_path / "explain.txt").read_text().splitlines()[0]
    assert "first 8 training samples" in (tmp_path / "graph.svg").read_text()
    assert "training cost: squared error + L2" in titles


@DIGITS
def test_a_wrong_gradient_fails_the_check(tmp_path, capsys, monkeypatch):
    from tinygrad_edu import ops

    real_backward = ops.Sigmoid.backward
    wrong = staticmethod(lambda ctx, grad: real_backward(ctx, grad) * 1.5)
    monkeypatch.setattr(ops.Sigmoid, "backward", wrong)
    status, _, err = run(["--out", str(tmp_path), *TINY], capsys)
    assert status == 1 and "gradient check: d cost / d" in err and "central differences" in err
    assert not (tmp_path / "model.npz").exists()


@DIGITS
def test_hidden_takes_a_list_of_layers(tmp_path, capsys):
    status, out, err = run(["--out", str(tmp_path), *TINY, "--hidden", "7,5"], capsys)
    assert status == 0, err
    assert "model: 64-7-5-10, sigmoid hidden layers" in out
    assert tg.load(tmp_path / "model.npz")["2.weight"].shape == (5, 7)


@DIGITS
def test_the_second_learners_network_stalls_and_the_diagnostics_say_why(tmp_path, capsys):
    """`--init rand` alone: two sigmoid layers of 128, all-positive weights; at chance, and the report
    says why. (The same network with the default init reaches about 28% after 5 epochs; rand stays at 10%.)"""
    status, out, err = run(["--out", str(tmp_path), "--init", "rand", "--epochs", "2", "--batch-size", "64",
                            "--no-progress"], capsys)
    assert status == 0, err
    assert "model: 64-128-128-10, sigmoid hidden layers" in out
    train, test = accuracies(out)
    assert train < 0.2 and test < 0.2  # ten classes: chance is 10%
    report = (tmp_path / "diagnostics.txt").read_text()
    assert "every initial weight is >= 0" in report and "saturate" in report
    assert "chance" in report
