"""How much memory a Monitor holds after a long run: tracemalloc over 10,000 training steps.

    python benchmarks/monitor_memory.py            # 10,000 steps, memory every 1,000
    python benchmarks/monitor_memory.py --quick    # 300 steps, max_points 50 (tests run this)

Two loops on a 20-32-32-3 tanh network, batch 16: the ordinary one (forward, backward, step,
monitor.step), and one that runs an extra training-mode forward every step that never reaches
backward or monitor.step (the gradient hooks it gets must not pile up). The figure printed is
the memory traced Python allocations hold after each block of steps, minus what they held after
the first block: bounded histories keep it flat. Memory figures only; no timing.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygrad_edu as tg  # noqa: E402
import tinygrad_edu.functional as F  # noqa: E402
from tinygrad_edu import nn, optim  # noqa: E402
from tinygrad_edu.diagnostics import Monitor  # noqa: E402
from tinygrad_edu.diagnostics.monitor import MAX_POINTS  # noqa: E402


def growth(steps: int, block: int, extra_forward: bool, max_points: int) -> list:
    """Traced memory (bytes) after each block of steps, relative to after the first block."""
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
    opt = optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 20)).astype(np.float32), rng.integers(0, 3, 16)
    monitor = Monitor(model, max_points=max_points)
    held, kept = [], []
    tracemalloc.start()
    try:
        for step in range(steps):
            if extra_forward:
                kept = [model(tg.Tensor(x))]  # a forward whose graph is alive but never used
            scores = model(tg.Tensor(x))
            loss = F.cross_entropy(scores, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.step(loss, scores, y)
            if (step + 1) % block == 0:
                gc.collect()
                held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    del kept
    return [value - held[0] for value in held]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--max-points", type=int, default=None, help="Monitor's max_points (its default)")
    parser.add_argument("--quick", action="store_true", help="300 steps and max_points 50: the script runs")
    args = parser.parse_args(argv)
    steps = 300 if args.quick else args.steps
    max_points = args.max_points or (50 if args.quick else MAX_POINTS)
    block = max(steps // 10, 1)
    for extra_forward in (False, True):
        name = "with an unused forward per step" if extra_forward else "ordinary loop"
        values = growth(steps, block, extra_forward, max_points)
        cells = " ".join(f"{value / 1024:+.0f}" for value in values)
        print(f"{name}: KiB held vs after {block} steps, every {block} steps: {cells}")
        print(f"{name}: growth after {steps} steps (max_points {max_points}): {values[-1] / 1024:+.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
