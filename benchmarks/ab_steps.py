"""Is a change to an op, a loss, a module or the optimizer faster? Two copies of the package in
one process, the benchmark's own training steps, alternating blocks.

    python -m benchmarks.ab_steps OLD_DIR [NEW_DIR] [--workloads W2,W3] [--seconds 20] [--compiled]

OLD_DIR and NEW_DIR each hold a `tinygrad_edu/` package (NEW_DIR defaults to this checkout;
make OLD_DIR with `git archive HEAD tinygrad_edu | tar -x -C OLD_DIR`). Each is imported under
another name and `benchmarks/tinygrad_versions.py` is loaded once per copy, so both train the
benchmark's network, weights and batches exactly as `run.py` does. Blocks of steps of the floor,
old and new run in turn (the order of old and new flipped every turn), so machine drift hits all
three alike (`--compiled`: the benchmark's tg.compile versions of the steps). It prints, per
workload, the median [quartiles] of new / old over the turns, and of each over the floor block
of its turn. BLAS is pinned to one thread unless OPENBLAS_NUM_THREADS
is set.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .ab_engine import HERE, import_copy  # noqa: E402
from .workloads import implementation, make_problem  # noqa: E402

PER_BLOCK = {"W2": 20, "W3": 100, "W6": 3}  # steps per block: a few milliseconds each


def versions_of(package_name: str):
    """benchmarks/tinygrad_versions.py with every `tinygrad_edu` import reading `package_name`."""
    source = (HERE / "benchmarks" / "tinygrad_versions.py").read_text()
    module_name = f"tinygrad_versions_{package_name}"
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source.replace("tinygrad_edu", package_name), module_name, "exec"), module.__dict__)
    return module


def compare(steps: dict, per_block: int, seconds: float) -> dict:
    """{"new/old", "old/floor", "new/floor": [ratio per turn]} of alternating blocks of steps."""
    for step in steps.values():
        for _ in range(per_block):
            step()
    ratios = {"new/old": [], "old/floor": [], "new/floor": []}
    end, turn = time.perf_counter() + seconds, 0
    while time.perf_counter() < end or turn < 4:
        order = ("floor", "old", "new") if turn % 2 == 0 else ("floor", "new", "old")
        elapsed = {}
        for which in order:
            step = steps[which]
            start = time.perf_counter()
            for _ in range(per_block):
                step()
            elapsed[which] = time.perf_counter() - start
        for key in ratios:
            top, bottom = key.split("/")
            ratios[key].append(elapsed[top] / elapsed[bottom])
        turn += 1
    return ratios


def summary(values: list) -> str:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"{median:.3f} [{q1:.3f}-{q3:.3f}]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=pathlib.Path)
    parser.add_argument("new", type=pathlib.Path, nargs="?", default=HERE)
    parser.add_argument("--workloads", default="W2,W3")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per workload")
    parser.add_argument("--compiled", action="store_true", help="time the tg.compile versions of the steps")
    args = parser.parse_args(argv)
    print(f"old {args.old}, new {args.new}; BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    with tempfile.TemporaryDirectory() as scratch:
        sys.path.insert(0, scratch)
        import_copy(args.old, "tinygrad_edu_old", pathlib.Path(scratch))
        import_copy(args.new, "tinygrad_edu_new", pathlib.Path(scratch))
        modules = {which: versions_of(f"tinygrad_edu_{which}") for which in ("old", "new")}
        for name in args.workloads.split(","):
            problem = make_problem(name)
            steps = {"floor": implementation("floor", problem).step}
            for which, module in modules.items():
                versions = module.COMPILED_VERSIONS if args.compiled else module.VERSIONS
                steps[which] = versions[name](problem).step
            ratios = compare(steps, PER_BLOCK[name], args.seconds)
            print(f"{name}, {len(ratios['new/old'])} turns of {PER_BLOCK[name]} steps: "
                  + "; ".join(f"{key} {summary(values)}" for key, values in ratios.items()))


if __name__ == "__main__":
    main()
