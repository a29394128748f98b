"""The benchmark is correct: its smoke run works, and its NumPy floor computes what tinygrad_edu does.

No timing assertions (numbers depend on the machine and its load); what is checked is that
the numbers are produced by the run, and that the floor the ratios divide by is the same
math, with a gradient check that would catch it if it were not.
"""
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` lives beside the package, not inside it

from benchmarks import numpy_floor, run, worker  # noqa: E402
from benchmarks.specs import WORKLOADS  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    GradientMismatch, compare, implementation, make_problem, verify_gradients,
)


def test_quick_run_prints_the_check_and_a_row_per_workload_from_its_own_numbers(tmp_path):
    path = tmp_path / "results.json"
    process = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 0, process.stderr
    out = process.stdout
    assert "threads: the machine's default, nothing forced" in out
    assert re.search(r"^BLAS( of numpy: \w+ \S+ \(.*\), \d+ threads?|: unknown)", out, flags=re.M), out
    assert re.search(r"^gradient check: OK.* W1 \(float64.* W5 \(float32", out, flags=re.M)
    results = json.loads(path.read_text())["results"]
    assert list(results) == list(WORKLOADS)
    for name, spec in WORKLOADS.items():
        row = re.search(rf"^\| {name} \| .*\|$", out, flags=re.M)
        assert row, f"no table row for {name}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        numbers = results[name]
        assert numbers["tinygrad"]["median"] > 0 and numbers["floor"]["median"] > 0
        of_medians = numbers["tinygrad"]["median"] / numbers["floor"]["median"]
        assert numbers["ratio_of_medians"] == pytest.approx(of_medians)
        pairs = zip(numbers["tinygrad"]["samples"], numbers["floor"]["samples"])
        ratio = statistics.median(t / f for t, f in pairs)  # each round's tinygrad_edu / floor
        assert numbers["ratio"] == pytest.approx(ratio)
        # the table shows this run's ratios and verdict, not stored ones
        verdict = "yes" if ratio <= spec.target else "no"
        assert cells[-4:] == [f"{of_medians:.2f}x", f"{ratio:.2f}x", f"<= {spec.target:.2f}x", verdict]
    assert "MiB peak" in out and "us/op" in out and "ms/step" in out


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_floor_gradients_and_update_match_tinygrad(name):
    summary = verify_gradients(name, quick=True)
    assert summary["workload"] == name
    assert summary["worst_diff_over_max"] <= (1e-5 if summary["dtype"] == "float32" else 1e-12)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_gradient_check_rejects_a_floor_with_one_wrong_gradient(name):
    problem = make_problem(name, quick=True)
    loss, grads = implementation("floor", problem).loss_and_grads()
    grads[-1] = grads[-1] * 1.01  # a 1% error in the last parameter's gradient
    with pytest.raises(GradientMismatch, match=f"gradient of {problem.names[-1]} "):
        compare(problem, (loss, grads), implementation("tinygrad", problem).loss_and_grads())


def test_gradient_check_rejects_a_floor_that_skips_the_update(monkeypatch):
    monkeypatch.setattr(numpy_floor._Floor, "step", lambda self, batch=None: None)
    with pytest.raises(GradientMismatch, match="after one training step"):
        verify_gradients("W2", quick=True)


def test_both_sides_start_from_the_same_weights():
    problem = make_problem("W2", quick=True)
    floor, version = implementation("floor", problem), implementation("tinygrad", problem)
    for initial, a, b in zip(problem.params, floor.parameter_arrays(), version.parameter_arrays()):
        assert np.array_equal(a, initial) and np.array_equal(b, initial)
        assert a is not initial and b is not initial  # copies: one side's update cannot reach the other


@pytest.mark.parametrize("impl", ["floor", "tinygrad"])
def test_memory_measurement_sees_numpy_buffers_allocated_by_the_step(impl):
    problem = make_problem("W5", quick=True)
    result = worker.measure_memory(implementation(impl, problem), impl)
    # Every gradient is allocated during the step, so the peak is at least their total size.
    assert result["value"] >= sum(p.nbytes for p in problem.params)
    assert result["method"].startswith("tracemalloc")


def test_a_failed_gradient_check_aborts_the_run_with_its_message(monkeypatch):
    failure = {"ok": False, "error": "W2: gradient of b3 (4,) differs"}
    monkeypatch.setattr(run, "run_worker", lambda arguments, env: (1, failure, ""))
    with pytest.raises(SystemExit, match="gradient check failed.*\n.*gradient of b3"):
        run.verify(["W2"], quick=True, seed=0, env={})


def test_workers_get_the_thread_count_and_the_repository_on_their_path():
    env = run.worker_environment(threads=3)
    assert all(env[name] == "3" for name in run.THREAD_VARIABLES) and env["BENCH_THREADS"] == "3"
    assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)
    assert run.parse_args(["--threads", "1"]).threads == 1


def test_by_default_workers_run_at_the_machines_default_threading(monkeypatch):
    for name in run.THREAD_VARIABLES + ("BENCH_THREADS",):
        monkeypatch.delenv(name, raising=False)
    assert run.parse_args([]).threads is None
    env = run.worker_environment(threads=None)
    assert not any(name in env for name in run.THREAD_VARIABLES + ("BENCH_THREADS",))
    assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)


def fake_workers(monkeypatch, values: dict):
    """Workers that answer at once: the BLAS query, the gradient check, then `values[impl]` as each sample."""
    def run_worker(arguments, env):
        if arguments[0] == "--blas":
            pool = {"internal_api": "openblas", "version": "0.3", "architecture": "Haswell",
                    "threading_layer": "pthreads", "num_threads": 2,
                    "filepath": "/x/numpy.libs/libopenblas.so"}
            return 0, {"ok": True, "pools": [pool]}, ""
        if arguments[0] == "--verify":
            checks = [{"workload": name, "against": "tinygrad", "dtype": "float32", "worst_diff_over_max": 0.0}
                      for name in arguments[1].split(",")]
            return 0, {"ok": True, "checks": checks}, ""
        value = values.get(arguments[1], values["floor"])  # the compiled step: as fast as the floor
        return 0, {"workload": arguments[0], "impl": arguments[1], "value": value}, ""

    monkeypatch.setattr(run, "run_worker", run_worker)


@pytest.mark.parametrize("tinygrad_value, code", [(3.0, 0), (3.5, 1)])
def test_a_ratio_above_three_times_its_target_fails_the_run_naming_the_workload(
        monkeypatch, capsys, tinygrad_value, code):
    fake_workers(monkeypatch, {"tinygrad": tinygrad_value, "floor": 1.0})  # W2: target 1.15, limit 3.45
    assert run.main(["--workloads", "W2", "--rounds", "2", "--no-torch"]) == code
    out = capsys.readouterr().out
    assert "BLAS of numpy: openblas 0.3 (Haswell, pthreads), 2 threads" in out
    if code:
        assert re.search(r"^REGRESSION W2: ratio 3\.50x is above 3 x its target 1\.15x = 3\.45x$", out, re.M)
    else:
        assert "REGRESSION" not in out and "every ratio is within 3 x its target" in out


def test_a_compiled_ratio_above_three_times_its_compiled_target_fails_the_run(monkeypatch, capsys):
    fake_workers(monkeypatch, {"tinygrad": 1.0, "floor": 1.0, "compiled": 5.0})  # W4 compiled: 1.5, limit 4.5
    assert run.main(["--workloads", "W4", "--rounds", "2", "--no-torch"]) == 1
    assert re.search(r"^REGRESSION W4 compiled: ratio 5\.00x is above 3 x its target 1\.50x = 4\.50x$",
                     capsys.readouterr().out, re.M)


def test_quick_mode_reports_a_regression_without_failing(monkeypatch, capsys):
    fake_workers(monkeypatch, {"tinygrad": 50.0, "floor": 1.0})
    assert run.main(["--workloads", "W3,W4", "--quick", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "regression guard (not enforced with --quick): W3: ratio 50.00x" in out
    assert "W4: ratio 50.00x" in out


def test_every_workload_target_is_the_issues():
    targets = {name: spec.target for name, spec in WORKLOADS.items()}
    assert {name: targets[name] for name in ("W1", "W2", "W3", "W4", "W5")} == {
        "W1": 1.10, "W2": 1.15, "W3": 3.5, "W4": 3.0, "W5": 1.3}
    assert run.parse_args(["--workloads", "w1,W3", "--quick"]).workloads == ["W1", "W3"]
    assert run.parse_args(["--quick"]).rounds == 1
    with pytest.raises(SystemExit):
        run.parse_args(["--workloads", "W9"])


# ---- the bare engine (the lower bound docs/performance.md quotes) ----------------------------
def test_bare_engine_quick_run_verifies_and_prints_a_ratio_per_workload(capsys):
    from benchmarks import bare_engine

    assert bare_engine.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for name in ("W2", "W3", "W4"):
        row = re.search(rf"^{name} +(\d+\.\d+)x \[.*\] +(\d+\.\d+)x \[.*\]$", out, flags=re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, out


@pytest.mark.parametrize("name", ["W2", "W3", "W4"])
def test_bare_engine_gradients_match_the_floor_and_a_wrong_one_is_caught(name, monkeypatch):
    from benchmarks import bare_engine

    bare_engine.verify(name, quick=True)
    backward = {"W2": "_sigmoid_backward", "W3": "_tanh_backward", "W4": "_tanh_backward"}[name]
    right = getattr(bare_engine, backward)
    def wrong(out, x):  # the right gradient plus the upstream one
        right(out, x)
        bare_engine._add_grad(x, out.grad)

    monkeypatch.setattr(bare_engine, backward, wrong)
    with pytest.raises(GradientMismatch):
        bare_engine.verify(name, quick=True)


def test_ab_engine_builds_the_chain_with_each_copy_and_both_give_the_same_gradient(tmp_path):
    from benchmarks import ab_engine

    repo = pathlib.Path(ab_engine.__file__).resolve().parent.parent
    sys.path.insert(0, str(tmp_path))
    try:
        old = ab_engine.import_copy(repo, "tinygrad_edu_ab_old", tmp_path)
        new = ab_engine.import_copy(repo, "tinygrad_edu_ab_new", tmp_path)
        assert old.Tensor is not new.Tensor  # two separate packages, not one imported twice
        times = ab_engine.compare(old, new, graphs=3, cycles=4)
        w2_ratios = ab_engine.compare_steps(old, new, pairs=2, steps=1)
        w3_ratios = ab_engine.compare_steps(old, new, pairs=2, steps=1, workload="W3")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("tinygrad_edu_ab_")]:
            del sys.modules[name]
    assert {part: [len(t) for t in pair] for part, pair in times.items()} == {"forward": [3, 3], "backward": [3, 3]}
    assert len(w2_ratios) == len(w3_ratios) == 2 and all(r > 0 for r in w2_ratios + w3_ratios)
    grads = []
    for tg in (old, new):
        x = tg.Tensor(np.linspace(-1, 1, 32), requires_grad=True)
        h = x
        for _ in range(4):
            h = (h * 1.0001).tanh() + 0.1
        h.sum().backward()
        grads.append(x.grad.data)
    np.testing.assert_array_equal(grads[0], grads[1])


def test_ab_steps_times_the_benchmarks_own_steps_of_two_package_copies(capsys, monkeypatch):
    from benchmarks import ab_steps

    monkeypatch.setattr(sys, "path", list(sys.path))  # main adds its scratch directory
    try:
        # This checkout against itself; two workloads (the second once found the first's classes).
        ab_steps.main([str(ROOT), "--workloads", "W3,W6", "--seconds", "0"])
    finally:
        copies = ("tinygrad_edu_old", "tinygrad_edu_new")
        for name in [name for name in sys.modules if name.startswith(copies)]:
            del sys.modules[name]
    out = capsys.readouterr().out
    ratios = r"\d+\.\d+ \[\d+\.\d+-\d+\.\d+\]"
    for name, steps in (("W3", 100), ("W6", 3)):
        line = rf"^{name}, \d+ turns of {steps} steps: new/old {ratios}; old/floor {ratios}; new/floor {ratios}$"
        assert re.search(line, out, flags=re.M), out
