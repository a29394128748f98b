"""Is an engine change faster? Two copies of the package, one process, alternating graphs.

    python -m benchmarks.ab_engine OLD_DIR [NEW_DIR] [--graphs 40] [--w2-pairs 40] [--w3-pairs 40]

OLD_DIR and NEW_DIR each hold a `tinygrad_edu/` package (NEW_DIR defaults to this checkout;
make OLD_DIR with `git worktree add /tmp/old HEAD~1` or `git archive`). Both are imported
under other names, and W4's chain (3000 ops on a (32,) tensor, then backward) is built and
differentiated with each in turn, the order flipped every pair, so machine drift hits both.
Forward and backward are timed apart. It prints the fastest and the first-quartile time of
each and new / old of both: on a shared machine the low end of the distribution moves least.
Then W2's training step (the benchmark's network, weights and batches; nn.Sequential,
F.cross_entropy, optim.SGD) in blocks of 40 steps, alternating: the median new / old of the pairs;
and W3's (10-16-16-1 tanh, F.mse_loss, SGD, float64 batch 4) in blocks of 200 steps.
BLAS is pinned to one thread (W4 calls no BLAS; the pin keeps other jobs' pools quiet).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent.parent


def import_copy(source: pathlib.Path, name: str, into: pathlib.Path):
    """Import the package in `source`/tinygrad_edu under `name` (its imports are relative)."""
    shutil.copytree(source / "tinygrad_edu", into / name)
    return importlib.import_module(name)


def w4_graph(tg, cycles: int = 1000) -> tuple:
    """(forward seconds, backward seconds) of one W4 chain built with package `tg`."""
    x = tg.Tensor(np.random.default_rng(0).uniform(-1.0, 1.0, 32), requires_grad=True)
    start = time.perf_counter()
    h = x
    for _ in range(cycles):
        h = (h * 1.0001).tanh() + 0.1
    loss = h.sum()
    middle = time.perf_counter()
    loss.backward()
    return middle - start, time.perf_counter() - middle


def compare(old, new, graphs: int, cycles: int = 1000) -> dict:
    """{"forward"/"backward": (old times, new times)} over `graphs` alternating pairs."""
    times = {"forward": ([], []), "backward": ([], [])}
    for pair in range(graphs):
        order = ((0, old), (1, new)) if pair % 2 == 0 else ((1, new), (0, old))
        for which, package in order:
            forward, backward = w4_graph(package, cycles)
            times["forward"][which].append(forward)
            times["backward"][which].append(backward)
    return times


def mlp_step(tg, workload: str = "W2"):
    """One training step of the benchmark's W2 or W3 (`benchmarks/tinygrad_versions.py`: nn.Sequential,
    the workload's loss and optim.SGD, its weights and batches), built with package `tg`."""
    from .ab_steps import versions_of
    from .workloads import make_problem

    return versions_of(tg.__name__).VERSIONS[workload](make_problem(workload)).step


def compare_steps(old, new, pairs: int, steps: int = 40, workload: str = "W2") -> list:
    """new / old time of blocks of `steps` W2 (or W3) steps, one ratio per pair, the order flipped
    every pair."""
    step = {"old": mlp_step(old, workload), "new": mlp_step(new, workload)}
    for _ in range(steps):
        step["old"](), step["new"]()
    ratios = []
    for pair in range(pairs):
        seconds = {}
        for which in ("old", "new") if pair % 2 == 0 else ("new", "old"):
            start = time.perf_counter()
            for _ in range(steps):
                step[which]()
            seconds[which] = time.perf_counter() - start
        ratios.append(seconds["new"] / seconds["old"])
    return ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=pathlib.Path)
    parser.add_argument("new", type=pathlib.Path, nargs="?", default=HERE)
    parser.add_argument("--graphs", type=int, default=40)
    parser.add_argument("--w2-pairs", type=int, default=40)
    parser.add_argument("--w3-pairs", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        sys.path.insert(0, scratch)
        old = import_copy(args.old, "tinygrad_edu_old", pathlib.Path(scratch))
        new = import_copy(args.new, "tinygrad_edu_new", pathlib.Path(scratch))
        w4_graph(old), w4_graph(new)  # warm both
        times = compare(old, new, args.graphs)
        w2_ratios = compare_steps(old, new, args.w2_pairs) if args.w2_pairs else []
        w3_ratios = compare_steps(old, new, args.w3_pairs, steps=200, workload="W3") if args.w3_pairs else []
    print(f"W4, {args.graphs} graphs of 3000 ops each; old {args.old}, new {args.new}")
    for part, (old_times, new_times) in times.items():
        old_times, new_times = sorted(old_times), sorted(new_times)
        q = len(old_times) // 4
        print(f"{part:9s} old min {old_times[0] * 1e3:.2f} ms, q1 {old_times[q] * 1e3:.2f} ms; "
              f"new min {new_times[0] * 1e3:.2f} ms, q1 {new_times[q] * 1e3:.2f} ms; "
              f"new/old min {new_times[0] / old_times[0]:.3f}, q1 {new_times[q] / old_times[q]:.3f}")
    for name, ratios, steps in (("W2", w2_ratios, 40), ("W3", w3_ratios, 200)):
        if ratios:
            quartiles = statistics.quantiles(ratios, n=4)
            print(f"{name} step, {len(ratios)} pairs of {steps} steps: "
                  f"new/old median {statistics.median(ratios):.3f} "
                  f"[{quartiles[0]:.3f}-{quartiles[2]:.3f}]")


if __name__ == "__main__":
    main()
