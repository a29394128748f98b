"""tg.compile against the NumPy floor (and eager tinygrad_edu), paired in one process.

`python -m benchmarks.compiled_paired` (`--seconds 10` per workload, `--quick` for a
correctness-only run) first checks the compiled step's loss, gradients and one training step
against the floor's, then alternates blocks of steps of the floor, eager tinygrad_edu and the
compiled step, and prints each one's median ratio to the floor block next to it (quartiles).
Alternating in one process lets both sides share the machine's drift (see README.md, Method).
"""
from __future__ import annotations

import argparse
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # as run.py's workers (effective when NumPy is not loaded yet)

from .bare_engine import alternate_blocks  # noqa: E402
from .tinygrad_versions import COMPILED_VERSIONS  # noqa: E402
from .workloads import compare, compare_parameters, implementation, make_problem  # noqa: E402

TARGETS = {"W1": 1.05, "W2": 1.05, "W3": 1.5, "W4": 1.5}


def verify(name: str, quick: bool) -> None:
    """The compiled step's loss, gradients and one update agree with the floor's (or raise)."""
    problem = make_problem(name, quick)
    floor, compiled = implementation("floor", problem), COMPILED_VERSIONS[name](problem)
    compare(problem, floor.loss_and_grads(), compiled.loss_and_grads(), "tinygrad")
    for version in (floor, compiled):
        version.reset()
        version.step(version.batches[0])
    compare_parameters(problem, floor.parameter_arrays(), compiled.parameter_arrays(), "tinygrad")


def paired_ratios(name: str, seconds: float, quick: bool = False) -> dict:
    """Alternate blocks of steps (floor, eager, compiled) for `seconds`; each block over the floor's."""
    problem = make_problem(name, quick)
    versions = {"floor": implementation("floor", problem), "eager": implementation("tinygrad", problem),
                "compiled": COMPILED_VERSIONS[name](problem)}
    return alternate_blocks(versions, {"W1": 2, "W4": 3}.get(name, 20), seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per workload")
    parser.add_argument("--workloads", default=",".join(TARGETS), help="comma-separated, e.g. W2,W4")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no timing: correctness only")
    args = parser.parse_args(argv)
    print("ratio to the NumPy floor, median of paired blocks in one process [quartiles]; "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"{'workload':9s} {'eager':>20s} {'tg.compile':>20s} {'target':>8s}")
    for name in args.workloads.split(","):
        verify(name, args.quick)
        result = paired_ratios(name, 0.0 if args.quick else args.seconds, args.quick)
        cells = [f"{m:.2f}x [{lo:.2f}-{hi:.2f}]" for m, lo, hi in (result["eager"], result["compiled"])]
        met = "met" if result["compiled"][0] <= TARGETS[name] else "NOT met"
        print(f"{name:9s} {cells[0]:>20s} {cells[1]:>20s} {'<= ' + str(TARGETS[name]) + 'x':>8s} {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
