"""Outsider campaign: the command line as a learner runs it (a subprocess, NumPy's warnings shown).

In-process tests filter RuntimeWarnings; a terminal does not, so this one looks at the real stderr.
"""
import os
import pathlib
import subprocess
import sys

import numpy as np
import scipy.io

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_a_diverging_run_prints_one_line_to_the_terminal_not_numpy_overflow_warnings(tmp_path):
    rng = np.random.default_rng(0)
    scipy.io.savemat(tmp_path / "small.mat", {"X": rng.normal(size=(40, 4)), "y": np.arange(40) % 3 + 1})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [sys.executable, "-m", "tinygrad_edu", "demo", "--data", "small.mat", "--lr", "1e300",
         "--epochs", "2", "--hidden", "3", "--no-progress", "--out", "out"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "smaller --lr" in lines[0], done.stderr
