"""The data and initial weights of each workload, and the check that the floor is right.

Every implementation (tinygrad_versions, numpy_floor, torch_versions) is built from the same
`Problem` and copies its arrays, so all of them train the same network from the same weights
on the same batches. `verify_gradients` runs one forward + backward of two implementations
from those weights and compares the loss and every gradient: a floor that computed something
else would make every ratio meaningless.

Implementation classes share one interface:
  ``__init__(problem)``, ``step(batch=None)`` (one training step: the timed unit),
  ``loss_and_grads(batch=None)`` -> (float, [ndarray per parameter], no update),
  ``reset()`` (drop gradients), ``warmup_batch`` (a small batch to warm code paths on).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from .specs import IMPLS, LABELS, WORKLOADS

# (rtol, atol as a fraction of the largest reference gradient entry): summation order differs
# between implementations (BLAS blocking, transposes), so float32 cannot match to the last bit.
TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-9, 1e-12)}

_MODULES = {"tinygrad": "benchmarks.tinygrad_versions", "floor": "benchmarks.numpy_floor",
            "torch": "benchmarks.torch_versions", "compiled": "benchmarks.tinygrad_versions"}


@dataclass
class Problem:
    """Initial parameters (canonical order and layout), batches, and hyperparameters.

    Layouts: W1 keeps the learner's (in, out) weights [W1, b1, W2, b2]; W2, W3 and W5 keep
    nn.Linear's (out, in) weights [W1, b1, W2, b2, W3, b3]; W4 has the one input [x].
    A batch is a tuple of arrays ((X, Y) or (x, labels)), or None for W4.
    """

    workload: str
    params: list
    names: list
    batches: list
    warmup_batch: object
    hyper: dict


def make_problem(name: str, quick: bool = False, seed: int = 0) -> Problem:
    """Build workload `name`'s arrays from `seed` (tiny sizes when `quick`)."""
    if name not in WORKLOADS:
        raise KeyError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    config = dict(WORKLOADS[name].config(quick))
    rng = np.random.default_rng(seed)
    if name == "W1":
        return _learner_problem(rng, config)
    if name == "W4":
        x = rng.uniform(-1.0, 1.0, config["length"])
        return Problem("W4", [x], ["x"], [None], None, config)
    if name == "W6":
        return _cnn_problem(rng, config)
    dtype = np.float64 if name == "W3" else np.float32
    return _mlp_problem(name, rng, config, dtype)


def _learner_problem(rng, config) -> Problem:
    """The first learner's network: weights uniform in +-0.12 (their randomInitialize)."""
    n_in, hidden, n_out = config["layers"]
    shapes = ((n_in, hidden), (hidden,), (hidden, n_out), (n_out,))
    params = [rng.uniform(-0.12, 0.12, shape) for shape in shapes]
    X = rng.random((config["rows"], n_in))  # pixel-like intensities in [0, 1)
    Y = np.eye(n_out)[rng.integers(0, n_out, config["rows"])]
    return Problem("W1", params, ["W1", "b1", "W2", "b2"], [(X, Y)], (X[:8].copy(), Y[:8].copy()), config)


def _mlp_problem(name, rng, config, dtype) -> Problem:
    """Linear layers initialised as nn.Linear does (uniform in +-1/sqrt(fan_in)), fixed batches."""
    layers = config["layers"]
    params, names = [], []
    for number, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        bound = 1.0 / np.sqrt(n_in)
        params.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype))
        params.append(rng.uniform(-bound, bound, n_out).astype(dtype))
        names += [f"W{number}", f"b{number}"]
    batches = []
    for _ in range(config["batches"]):
        if name == "W3":  # regression: standard-normal inputs, one target per row, shaped like the output
            x = rng.standard_normal((config["batch"], layers[0]))
            y = rng.standard_normal((config["batch"], layers[-1]))
        else:
            x = rng.random((config["batch"], layers[0]), dtype=np.float32)
            y = rng.integers(0, layers[-1], config["batch"])
        batches.append((x.astype(dtype), y))
    x, y = batches[0]
    return Problem(name, params, names, batches, (x[:2].copy(), y[:2].copy()), config)


def _cnn_problem(rng, config) -> Problem:
    """Two conv layers (O, C, k, k) and a Linear (classes, C * (side/4)**2), initialised as
    nn.Conv2d and nn.Linear are (uniform in +-1/sqrt(fan_in)); images in [0, 1), NCHW."""
    channels, k, side = config["channels"], config["kernel"], config["side"]
    shapes = [(channels[1], channels[0], k, k), (channels[1],),
              (channels[2], channels[1], k, k), (channels[2],),
              (config["classes"], channels[2] * (side // 4) ** 2), (config["classes"],)]
    fans = [channels[0] * k * k] * 2 + [channels[1] * k * k] * 2 + [shapes[4][1]] * 2
    params = [rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(np.sqrt(fan))
              for shape, fan in zip(shapes, fans)]
    batches = [(rng.random((config["batch"], channels[0], side, side), dtype=np.float32),
                rng.integers(0, config["classes"], config["batch"])) for _ in range(config["batches"])]
    x, y = batches[0]
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    return Problem("W6", params, names, batches, (x[:2].copy(), y[:2].copy()), config)


def implementation(impl: str, problem: Problem):
    """Build `impl`'s version ("tinygrad", "floor" or "torch") of `problem`'s workload."""
    if impl not in IMPLS:
        raise KeyError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
    module = importlib.import_module(_MODULES[impl])
    versions = module.COMPILED_VERSIONS if impl == "compiled" else module.VERSIONS
    return versions[problem.workload](problem)


class GradientMismatch(AssertionError):
    """The floor's loss or gradients differ from tinygrad_edu's: the benchmark is invalid."""


def compare(problem: Problem, reference, candidate, candidate_impl: str = "tinygrad") -> dict:
    """Check `candidate`'s (loss, grads) against the floor's `reference`; raise GradientMismatch.

    Returns a summary: the dtype, the tolerance and the worst relative difference found.
    """
    ref_loss, ref_grads = reference
    loss, grads = candidate
    dtype = problem.params[0].dtype
    rtol, atol_fraction = TOLERANCES[dtype]
    who = f"{problem.workload}: {LABELS[candidate_impl]} vs the NumPy floor"
    if len(grads) != len(ref_grads):
        raise GradientMismatch(f"{who}: {len(grads)} gradients against {len(ref_grads)}")
    if not np.isclose(loss, ref_loss, rtol=rtol, atol=0.0):
        raise GradientMismatch(f"{who}: loss {loss!r} != {ref_loss!r} (rtol {rtol:g})")
    worst = 0.0
    for name, ref, got in zip(problem.names, ref_grads, grads):
        got = np.asarray(got)
        if got.shape != ref.shape:
            raise GradientMismatch(
                f"{who}: gradient of {name} has shape {got.shape}, the floor's {ref.shape}"
            )
        if not np.all(np.isfinite(ref)):
            raise GradientMismatch(f"{who}: the floor's gradient of {name} is not finite")
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        atol = atol_fraction * scale
        if not np.allclose(got, ref, rtol=rtol, atol=atol):
            diff = np.abs(got - ref)
            index = np.unravel_index(np.argmax(diff - rtol * np.abs(ref)), ref.shape)
            raise GradientMismatch(
                f"{who}: gradient of {name} {ref.shape} differs; worst at {index}: "
                f"{got[index]!r} vs floor {ref[index]!r} (rtol {rtol:g}, atol {atol:.3g})"
            )
        if scale > 0:
            worst = max(worst, float(np.max(np.abs(got - ref))) / scale)
    return {"workload": problem.workload, "against": candidate_impl, "dtype": str(dtype),
            "rtol": rtol, "atol_fraction": atol_fraction, "worst_diff_over_max": worst}


def verify_gradients(name: str, quick: bool = False, seed: int = 0, impl: str = "tinygrad") -> dict:
    """One forward + backward of `impl` and of the floor from the same weights; compare them.

    Then one training step of each (the code that is timed) on the same batch, and compare
    the updated parameters too. Raises GradientMismatch naming the parameter and the worst
    element if they differ.
    """
    problem = make_problem(name, quick, seed)
    floor, other = implementation("floor", problem), implementation(impl, problem)
    summary = compare(problem, floor.loss_and_grads(), other.loss_and_grads(), impl)
    for version in (floor, other):
        version.reset()  # a training loop clears the gradients loss_and_grads left behind
        version.step(version.batches[0])
    after = [np.array(p, copy=True) for p in other.parameter_arrays()]
    # Parameters after the step differ from the floor's by lr times the gradient difference.
    compare_parameters(problem, floor.parameter_arrays(), after, impl)
    return summary


def compare_parameters(problem: Problem, reference: list, candidate: list, candidate_impl: str) -> None:
    """Raise GradientMismatch unless the parameters after one step agree with the floor's."""
    rtol, atol_fraction = TOLERANCES[problem.params[0].dtype]
    for name, ref, got in zip(problem.names, reference, candidate):
        atol = atol_fraction * float(np.max(np.abs(ref))) if ref.size else 0.0
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=rtol, atol=atol):
            raise GradientMismatch(
                f"{problem.workload}: after one training step, {LABELS[candidate_impl]}'s {name} differs "
                f"from the NumPy floor's (largest difference {np.max(np.abs(got - ref)):.3g}): "
                "the two steps do not apply the same update"
            )
