"""One benchmark process: one workload, one implementation, measured from a fresh interpreter.

    python -m benchmarks.worker W2 tinygrad [--quick]     -> time (or memory) of W2's step
    python -m benchmarks.worker --verify W1,W2 [--quick]  -> floor vs tinygrad_edu gradients
    python -m benchmarks.worker --blas                    -> the BLAS libraries and thread counts in use

Prints one JSON object on its last stdout line; run.py starts these and reads that line.
A fresh process per measurement keeps one implementation's caches, allocator state and
garbage out of the other's numbers.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc

from .specs import IMPLS, WORKLOADS
from .workloads import GradientMismatch, implementation, make_problem, verify_gradients


def measure_time(version, steps: tuple) -> dict:
    """Warm up, then time `blocks` blocks of `per_block` steps; the sample is the fastest block.

    The fastest block is the one least disturbed by whatever else the machine was doing (as
    `timeit` advises); run.py then takes the median of these samples over rounds.
    """
    warmup, blocks, per_block = steps
    for _ in range(warmup):
        version.step()
    seconds = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            version.step()
        seconds.append((time.perf_counter() - start) / per_block)
    return {"value": min(seconds), "median_block": statistics.median(seconds), "blocks": seconds,
            "timed_steps": blocks * per_block}


def measure_memory(version, impl: str) -> dict:
    """Peak bytes allocated during one training step, after the model and the data exist.

    tracemalloc sees NumPy's array buffers (NumPy reports them to it) and every Python
    object; it starts right before the step, so only what the step allocates is counted
    (and what it frees of that). PyTorch's allocator is invisible to it: for torch the
    value is the rise of the process's peak RSS (ru_maxrss) over its RSS before the step.
    """
    version.step(version.warmup_batch)  # first-call work (imports, caches) on a tiny batch
    version.reset()
    gc.collect()
    rss_before = _current_rss()
    if impl == "torch":
        version.step()
        peak, method = max(0, _max_rss() - rss_before), "ru_maxrss - RSS before the step"
    else:
        tracemalloc.start()
        version.step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        method = "tracemalloc peak during the step"
    return {"value": peak, "method": method, "rss_before": rss_before, "process_max_rss": _max_rss()}


def _current_rss() -> int:
    """Resident set size now, in bytes (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _max_rss() -> int:
    """Peak resident set size of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def blas_pools() -> list:
    """The BLAS thread pools loaded once NumPy and tinygrad_edu are imported, as threadpoolctl sees them
    (library, version, CPU architecture, threads); empty when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import numpy  # noqa: F401  (load the libraries a training step can use)
    import tinygrad_edu  # noqa: F401

    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info() if pool["user_api"] == "blas"]


def run_one(workload: str, impl: str, quick: bool, seed: int) -> dict:
    spec = WORKLOADS[workload]
    version = implementation(impl, make_problem(workload, quick, seed))
    if spec.kind == "memory":
        result = measure_memory(version, impl)
    else:
        result = measure_time(version, spec.step_counts(quick))
    variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    threads = {name: os.environ.get(name) for name in variables}
    return {"workload": workload, "impl": impl, "kind": spec.kind, "quick": quick, "threads": threads,
            **result}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", choices=sorted(WORKLOADS))
    parser.add_argument("impl", nargs="?", choices=IMPLS)
    parser.add_argument("--verify", metavar="W1,W2",
                        help="check the floor's gradients against tinygrad_edu's")
    parser.add_argument("--blas", action="store_true", help="print the BLAS libraries and their threads")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (correctness only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.blas:
        print(json.dumps({"ok": True, "pools": blas_pools()}))
        return 0
    if args.verify:
        try:
            names = args.verify.split(",")
            checks = [verify_gradients(name, args.quick, args.seed) for name in names]
            checks += [verify_gradients(name, args.quick, args.seed, impl="compiled") for name in names
                       if WORKLOADS[name].compiled_target is not None]
        except GradientMismatch as error:
            print(json.dumps({"ok": False, "error": str(error)}))
            return 1
        print(json.dumps({"ok": True, "checks": checks}))
        return 0
    if args.workload is None or args.impl is None:
        parser.error("give a workload and an implementation, or --verify")
    print(json.dumps(run_one(args.workload, args.impl, args.quick, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
