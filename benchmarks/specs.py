"""What each workload is: its description, sizes, measured quantity, target and step counts.

Plain data, no NumPy: run.py reads it before it sets the BLAS thread variables, and the
worker processes read it to know how long to warm up and measure.
"""
from __future__ import annotations

from dataclasses import dataclass

IMPLS = ("tinygrad", "floor", "torch", "compiled")
LABELS = {"tinygrad": "tinygrad_edu", "floor": "NumPy floor", "torch": "PyTorch", "bare": "bare engine",
          "compiled": "tg.compile"}


@dataclass(frozen=True)
class Workload:
    """One row of the issue's table.

    `kind` is "time" (seconds per step, shown per `unit`) or "memory" (peak bytes of one
    step). `sizes` / `quick_sizes` feed workloads.make_problem. `steps` / `quick_steps` are
    (warm-up steps, timed blocks, steps per block) for a time workload.
    """

    name: str
    what: str
    kind: str
    target: float
    unit: str
    sizes: dict
    quick_sizes: dict
    steps: tuple = (1, 1, 1)
    quick_steps: tuple = (1, 2, 2)
    compiled_target: float | None = None  # the same step through tg.compile, against the floor (issue 20)

    def config(self, quick: bool) -> dict:
        return self.quick_sizes if quick else self.sizes

    def step_counts(self, quick: bool) -> tuple:
        return self.quick_steps if quick else self.steps

    def ops_per_step(self, quick: bool) -> int:
        """How many units one step counts: 1, or the chain's op count for W4 (time per op)."""
        return 3 * self.config(quick)["cycles"] if self.unit == "op" else 1


WORKLOADS = {
    "W1": Workload(
        name="W1",
        what="float64 X(5000,400), 400-25-10 sigmoid, MSE + L2, full-batch GD (first learner)",
        kind="time", target=1.10, unit="step", compiled_target=1.05,
        sizes=dict(rows=5000, layers=(400, 25, 10), lr=0.12, lam=1.0),
        quick_sizes=dict(rows=40, layers=(12, 5, 10), lr=0.12, lam=1.0),
        steps=(3, 8, 4),
    ),
    "W2": Workload(
        name="W2",
        what="float32 784-128-128-10 sigmoid, softmax + CE, SGD, batch 64",
        kind="time", target=1.15, unit="step", compiled_target=1.05,
        sizes=dict(batch=64, layers=(784, 128, 128, 10), batches=8, lr=0.1),
        quick_sizes=dict(batch=8, layers=(12, 6, 6, 4), batches=2, lr=0.1),
        steps=(20, 8, 40),
    ),
    "W3": Workload(
        name="W3",
        what="float64 10-16-16-1 tanh, MSE, SGD, batch 4 (overhead-bound)",
        kind="time", target=3.5, unit="step", compiled_target=1.5,
        sizes=dict(batch=4, layers=(10, 16, 16, 1), batches=16, lr=0.05),
        quick_sizes=dict(batch=4, layers=(10, 16, 16, 1), batches=2, lr=0.05),
        steps=(200, 8, 300),
    ),
    "W4": Workload(
        name="W4",
        what="3000-op chain x*1.0001 -> tanh -> +0.1 on a float64 (32,) tensor, then backward",
        kind="time", target=3.0, unit="op", compiled_target=1.5,
        sizes=dict(length=32, cycles=1000, scale=1.0001, shift=0.1),
        quick_sizes=dict(length=32, cycles=10, scale=1.0001, shift=0.1),
        steps=(2, 8, 3),
    ),
    "W5": Workload(
        name="W5",
        what="peak memory of one SGD step, float32 784-2048-2048-10 ReLU, softmax + CE, batch 2048",
        kind="memory", target=1.3, unit="step",
        sizes=dict(batch=2048, layers=(784, 2048, 2048, 10), batches=1, lr=0.01),
        quick_sizes=dict(batch=16, layers=(12, 32, 32, 4), batches=1, lr=0.01),
    ),
    "W6": Workload(
        name="W6",
        what="float32 CNN 28x28, (conv 3x3 pad 1, ReLU, max-pool 2) x2 with 1->8->16 channels, "
             "Linear 784-10, softmax + CE, SGD, batch 64",
        kind="time", target=1.5, unit="step",
        sizes=dict(batch=64, side=28, channels=(1, 8, 16), kernel=3, classes=10, batches=4, lr=0.05),
        quick_sizes=dict(batch=4, side=8, channels=(1, 2, 3), kernel=3, classes=4, batches=2, lr=0.05),
        steps=(5, 8, 10),
    ),
}
