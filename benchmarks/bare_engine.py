"""How close to the floor can any define-by-run engine written in Python get? A measured bound.

`python -m benchmarks.bare_engine` trains W2, W3 and W4 three ways in one process: the
hand-written NumPy floor, tinygrad_edu, and the bare engine below, alternating blocks of
steps, and prints each one's median ratio to the floor (with the interquartile range).

The bare engine records what every define-by-run engine has to record, and nothing else: one
node per operation (its backward function, inputs and saved arrays) appended to a tape, and a
backward pass that walks the tape from the end. It has no checks of shapes or dtypes, no
broadcasting rules, no hooks, guards, names, create_graph or error messages, and it frees
nothing early; ops are fused as the floor fuses them (Linear, softmax-cross-entropy, MSE).
It is not part of tinygrad_edu and must never be used for anything but this measurement:
if even it misses a target, the missing part is the cost of running an engine in Python at
all, not something a leaner tinygrad_edu could remove. Its gradients are checked against
the floor's before it is timed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # as run.py's workers (effective when NumPy is not loaded yet)

import numpy as np  # noqa: E402
from scipy.special import expit  # noqa: E402

from .workloads import compare, compare_parameters, implementation, make_problem  # noqa: E402


# ---- the engine: a value, a tape, and the ops W2-W4 use ------------------------------------
class Var:
    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=False):
        self.data, self.grad, self.requires_grad = data, None, requires_grad


tape = []  # (backward function, output, (inputs and saved values)) per recorded op, in creation order


def _add_grad(var, g):
    var.grad = g if var.grad is None else var.grad + g


def mul_constant(x, c):
    out = Var(x.data * c, True)
    tape.append((_mul_constant_backward, out, (x, c)))
    return out


def _mul_constant_backward(out, x, c):
    _add_grad(x, out.grad * c)


def add_constant(x, c):
    out = Var(x.data + c, True)
    tape.append((_add_constant_backward, out, (x,)))
    return out


def _add_constant_backward(out, x):
    _add_grad(x, out.grad)


def tanh(x):
    out = Var(np.tanh(x.data), True)
    tape.append((_tanh_backward, out, (x,)))
    return out


def _tanh_backward(out, x):
    slope = 1 - out.data * out.data
    slope *= out.grad
    _add_grad(x, slope)


def sigmoid(x):
    out = Var(expit(x.data), True)
    tape.append((_sigmoid_backward, out, (x,)))
    return out


def _sigmoid_backward(out, x):
    slope = 1 - out.data
    slope *= out.data
    slope *= out.grad
    _add_grad(x, slope)


def linear(x, w, b):
    z = x.data @ w.data.T
    z += b.data
    out = Var(z, True)
    tape.append((_linear_backward, out, (x, w, b)))
    return out


def _linear_backward(out, x, w, b):
    g = out.grad
    if x.requires_grad:
        _add_grad(x, g @ w.data)
    _add_grad(w, g.T @ x.data)
    _add_grad(b, g.sum(axis=0))


def sum_all(x):
    out = Var(x.data.sum(), True)
    tape.append((_sum_backward, out, (x,)))
    return out


def _sum_backward(out, x):
    _add_grad(x, np.full(x.data.shape, out.grad, dtype=x.data.dtype))


def mse(x, y):
    diff = x.data - y.data
    out = Var(np.vdot(diff, diff) / diff.size, True)
    tape.append((_mse_backward, out, (x, diff)))
    return out


def _mse_backward(out, x, diff):
    _add_grad(x, diff * (2.0 * out.grad / diff.size))


def cross_entropy(x, labels, rows):
    shifted = x.data - x.data.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    loss = (np.log(sums).sum() - shifted[rows, labels].sum()) / len(labels)
    exp /= sums
    out = Var(loss, True)
    tape.append((_cross_entropy_backward, out, (x, exp, labels, rows)))
    return out


def _cross_entropy_backward(out, x, probs, labels, rows):
    g = probs * (out.grad / len(labels))
    g[rows, labels] -= out.grad / len(labels)
    _add_grad(x, g)


def backward(loss):
    loss.grad = np.ones((), dtype=np.asarray(loss.data).dtype)
    for backward_fn, out, args in reversed(tape):
        if out.grad is not None:
            backward_fn(out, *args)
        out.grad = None  # interior gradients are not kept
    tape.clear()


# ---- the workloads, with the interface of numpy_floor / tinygrad_versions ------------------
class _Bare:
    def __init__(self, problem):
        self.params = [Var(p.copy(), True) for p in problem.params]
        self.batches = [None if b is None else tuple(Var(a) for a in b) for b in problem.batches]
        self.lr = problem.hyper.get("lr", 0.0)
        self._count = 0

    def reset(self) -> None:
        for p in self.params:
            p.grad = None

    def parameter_arrays(self) -> list:
        return [p.data for p in self.params]

    def loss_and_grads(self, batch=None):
        self.reset()
        loss = self._loss(self.batches[0] if batch is None else batch)
        backward(loss)
        return float(loss.data), [p.grad.copy() for p in self.params]

    def step(self, batch=None) -> None:
        self.reset()
        if batch is None:
            batch = self.batches[self._count % len(self.batches)]
            self._count += 1
        backward(self._loss(batch))
        for p in self.params:
            g = p.grad
            g *= self.lr  # the gradient is the engine's own array, as in the floor
            p.data -= g


class W2Bare(_Bare):
    def __init__(self, problem):
        super().__init__(problem)
        self.rows = np.arange(problem.hyper["batch"])

    def _loss(self, batch):
        x, labels = batch
        W1, b1, W2, b2, W3, b3 = self.params
        h = sigmoid(linear(x, W1, b1))
        h = sigmoid(linear(h, W2, b2))
        return cross_entropy(linear(h, W3, b3), labels.data, self.rows[:len(labels.data)])


class W3Bare(_Bare):
    def _loss(self, batch):
        x, y = batch
        W1, b1, W2, b2, W3, b3 = self.params
        h = tanh(linear(x, W1, b1))
        h = tanh(linear(h, W2, b2))
        return mse(linear(h, W3, b3), y)


class W4Bare(_Bare):
    def __init__(self, problem):
        super().__init__(problem)
        self.cycles = problem.hyper["cycles"]
        self.scale, self.shift = problem.hyper["scale"], problem.hyper["shift"]

    def _loss(self, batch):
        h = self.params[0]
        for _ in range(self.cycles):
            h = add_constant(tanh(mul_constant(h, self.scale)), self.shift)
        return sum_all(h)

    def step(self, batch=None) -> None:
        self.reset()
        backward(self._loss(None))  # forward + backward, no update, as the floor's W4


VERSIONS = {"W2": W2Bare, "W3": W3Bare, "W4": W4Bare}


# ---- the measurement -------------------------------------------------------------------------
def verify(name: str, quick: bool) -> None:
    """The bare engine's loss, gradients and one step agree with the floor's (or raise)."""
    problem = make_problem(name, quick)
    floor, bare = implementation("floor", problem), VERSIONS[name](problem)
    compare(problem, floor.loss_and_grads(), bare.loss_and_grads(), "bare")
    for version in (floor, bare):
        version.reset()
        version.step(version.batches[0])
    compare_parameters(problem, floor.parameter_arrays(), bare.parameter_arrays(), "bare")


def paired_ratios(name: str, seconds: float, quick: bool = False) -> dict:
    """Alternate blocks of steps of the floor, tinygrad_edu and the bare engine for `seconds`;
    each block's time over the floor block before it, median and quartiles per engine."""
    problem = make_problem(name, quick)
    versions = {"floor": implementation("floor", problem), "tinygrad": implementation("tinygrad", problem),
                "bare": VERSIONS[name](problem)}
    return alternate_blocks(versions, 3 if name == "W4" else 20, seconds)


def alternate_blocks(versions: dict, per_block: int, seconds: float) -> dict:
    """Run blocks of `per_block` steps of each version in turn (the first is the floor) for
    `seconds`; each other version's block time over the floor block of the same turn, as
    (median, lower quartile, upper quartile)."""
    for version in versions.values():
        for _ in range(per_block):
            version.step()
    ratios = {impl: [] for impl in list(versions)[1:]}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not ratios[list(ratios)[-1]]:
        elapsed = {}
        for impl, version in versions.items():
            start = time.perf_counter()
            for _ in range(per_block):
                version.step()
            elapsed[impl] = time.perf_counter() - start
        for impl in ratios:
            ratios[impl].append(elapsed[impl] / elapsed["floor"])
    return {impl: _quartiles(values) for impl, values in ratios.items()}


def _quartiles(values: list) -> tuple:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4)
    return median, q1, q3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per workload")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no measuring time: correctness only")
    args = parser.parse_args(argv)
    threads = os.environ["OPENBLAS_NUM_THREADS"]
    print("ratio to the NumPy floor, median of paired blocks in one process [quartiles]; "
          f"BLAS threads {threads}")
    print(f"{'workload':9s} {'tinygrad_edu':>22s} {'bare engine':>22s}")
    for name in VERSIONS:
        verify(name, args.quick)
        result = paired_ratios(name, 0.0 if args.quick else args.seconds, args.quick)
        cells = [f"{m:.2f}x [{lo:.2f}-{hi:.2f}]" for m, lo, hi in (result["tinygrad"], result["bare"])]
        print(f"{name:9s} {cells[0]:>22s} {cells[1]:>22s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
