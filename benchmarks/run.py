"""Run the benchmarks: tinygrad_edu against a hand-written NumPy floor (and PyTorch if installed).

    python benchmarks/run.py                      # all workloads, 7 rounds, the machine's default threading
    python benchmarks/run.py --threads 1          # BLAS (and PyTorch) pinned to one thread
    python benchmarks/run.py --workloads W1,W3 --rounds 3 --json results.json
    python benchmarks/run.py --quick              # tiny sizes, 1 round: a correctness smoke run

First the floor's gradients are checked against tinygrad_edu's (abort if they differ). Then,
each round, every workload runs once per implementation, each in a fresh worker process
(`python -m benchmarks.worker W2 tinygrad`), the order of implementations alternating between
rounds. The table gives each implementation's median over rounds (min-max), the ratio of those
medians, and the median over rounds of each round's own ratio (tinygrad_edu's process / the
floor's process run next to it), which the verdict uses: this VM's speed drifts by up to 2x over
seconds, and the two processes of one round share the drift. Only this script's own run
produces the numbers.

Nothing about threading is forced unless --threads is given: the workers see the environment
as a user's program would, and the header prints the BLAS libraries and thread counts they
found (threadpoolctl). The run exits with status 1, naming the workload, when any ratio is
above REGRESSION_FACTOR times its target (a regression, not noise); --quick reports but does
not enforce it, since its tiny sizes make the ratios meaningless.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script, `benchmarks` is not importable otherwise

from benchmarks.specs import LABELS, WORKLOADS  # noqa: E402  (no NumPy in the parent process)

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_ROUNDS = 7
REGRESSION_FACTOR = 3.0  # a ratio this many times its target is a regression, beyond any machine noise


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, e.g. W1,W3")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"processes per workload and implementation (default {DEFAULT_ROUNDS}; "
                        "1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 1 round: correctness only")
    parser.add_argument("--threads", type=int, default=None,
                        help="pin BLAS/OpenMP (and PyTorch) threads in the workers to N "
                        "(default: nothing forced, the machine's default)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers to PATH")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = [name.strip().upper() for name in args.workloads.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        parser.error(f"unknown workload(s) {given}; choose from {', '.join(WORKLOADS)}")
    args.workloads = names
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--rounds and --threads must be at least 1")
    return args


def worker_environment(threads) -> dict:
    """The parent's environment with the repository importable; with a thread count, BLAS pinned to it."""
    env = dict(os.environ)
    if threads is not None:
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
        env["BENCH_THREADS"] = str(threads)  # torch_versions reads it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(arguments: list, env: dict) -> tuple:
    """Start one worker; returns (exit code, its JSON result or None, its stderr)."""
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    lines = process.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    return process.returncode, result, process.stderr


def torch_works(env: dict) -> bool:
    """True when `import torch` succeeds in a worker (torch is optional, never required)."""
    if importlib.util.find_spec("torch") is None:
        return False
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    return check.returncode == 0


def verify(names: list, quick: bool, seed: int, env: dict) -> list:
    """The once-per-run gradient check; exits with the mismatch if the floor is wrong."""
    arguments = ["--verify", ",".join(names), "--seed", str(seed)] + (["--quick"] if quick else [])
    code, result, stderr = run_worker(arguments, env)
    if result is None or not result.get("ok"):
        detail = result["error"] if result else stderr.strip()
        sys.exit(f"ABORTED: gradient check failed, the NumPy floor does not compute tinygrad_edu's "
                 f"gradients, so no ratio would mean anything.\n{detail}")
    return result["checks"]


def blas_description(env: dict) -> str:
    """One line per BLAS library a worker loads: which package ships it, version, CPU kernel, threads."""
    code, result, stderr = run_worker(["--blas"], env)
    if result is None or not result.get("pools"):
        return "BLAS: unknown (install threadpoolctl to see the library and its threads)"
    lines = []
    for pool in result["pools"]:
        package = Path(pool["filepath"] or "?").parent.name.removesuffix(".libs")
        threads = f"{pool['num_threads']} thread" + ("s" if pool["num_threads"] != 1 else "")
        note = "" if package == "numpy" else " (loaded; a training step calls only NumPy's)"
        lines.append(f"BLAS of {package}: {pool['internal_api']} {pool['version']} ({pool['architecture']}, "
                     f"{pool['threading_layer']}), {threads}{note}")
    return "\n".join(sorted(lines, key=lambda line: not line.startswith("BLAS of numpy")))


def regressions(results: dict) -> list:
    """A sentence for each workload whose ratio is above REGRESSION_FACTOR times its target."""
    found = []
    for name, row in results.items():
        spec = WORKLOADS[name]
        for label, ratio, target in ((name, row["ratio"], spec.target),
                                     (f"{name} compiled", row.get("compiled_ratio"), spec.compiled_target)):
            if ratio is not None and ratio > REGRESSION_FACTOR * target:
                found.append(f"{label}: ratio {ratio:.2f}x is above {REGRESSION_FACTOR:g} x its target "
                             f"{target:.2f}x = {REGRESSION_FACTOR * target:.2f}x")
    return found


def summary(samples: list) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": samples}


def format_value(spec, value: float, quick: bool) -> str:
    if spec.kind == "memory":
        megabytes = value / 2**20
        return f"{megabytes:.1f}" if megabytes >= 10 else f"{megabytes:.3g}"
    if spec.unit == "op":
        return f"{value / spec.ops_per_step(quick) * 1e6:.2f}"
    return f"{value * 1e3:.3g}" if value < 1e-3 else f"{value * 1e3:.2f}"


def unit_label(spec) -> str:
    return {"memory": "MiB peak"}.get(spec.kind, "us/op" if spec.unit == "op" else "ms/step")


def cell(spec, stats: dict, quick: bool) -> str:
    low, high = format_value(spec, stats["min"], quick), format_value(spec, stats["max"], quick)
    return f"{format_value(spec, stats['median'], quick)} {unit_label(spec)} ({low}-{high})"


def render_table(results: dict, impls: list, quick: bool) -> str:
    columns = ["workload", "what one step is"] + [f"{LABELS[i]} median (min-max)" for i in impls]
    columns += ["ratio of medians", "ratio (median of rounds)", "target", "met?"]
    rows = [columns, ["---"] * len(columns)]
    for name, row in results.items():
        spec = WORKLOADS[name]
        cells = [name, spec.what]
        for impl in impls:
            if impl not in row:
                cells.append("n/a")
                continue
            text = cell(spec, row[impl], quick)
            if impl == "torch":
                text += f", {row['torch_ratio']:.2f}x"
            if impl == "compiled":
                verdict = "met" if row["compiled_met"] else "NOT met"
                text += f", {row['compiled_ratio']:.2f}x (target <= {spec.compiled_target:.2f}x: {verdict})"
            cells.append(text)
        cells += [f"{row['ratio_of_medians']:.2f}x", f"{row['ratio']:.2f}x", f"<= {spec.target:.2f}x",
                  "yes" if row["met"] else "no"]
        rows.append(cells)
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def header(args, impls: list, blas: str) -> str:
    versions = []
    for package in ("numpy", "scipy") + (("torch",) if "torch" in impls else ()):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} ?")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        "# tinygrad_edu benchmarks",
        f"python {platform.python_version()}, {', '.join(versions)}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs",
        (f"threads: pinned, {'='.join(THREAD_VARIABLES)}={args.threads} in every worker"
         if args.threads is not None else
         "threads: the machine's default, nothing forced (--threads N pins BLAS to N)"),
        blas,
        f"rounds: {args.rounds}; each round runs every workload once per implementation "
        f"({', '.join(LABELS[i] for i in impls)}), each in a fresh process, order alternating between rounds",
        "time: per process, warm-up steps then timed blocks of steps; its sample is its fastest block",
        "memory (W5): tracemalloc peak of one training step in a fresh process, counted from when "
        "the model and data exist (NumPy reports its buffers to tracemalloc)",
        f"load average at start: {load}",
    ]
    if args.quick:
        lines.append("QUICK MODE: tiny sizes, correctness only; the numbers and ratios mean nothing")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = worker_environment(args.threads)
    impls = ["tinygrad", "floor", "compiled"] + (["torch"] if not args.no_torch and torch_works(env) else [])
    blas = blas_description(env)
    print(header(args, impls, blas), flush=True)

    checks = verify(args.workloads, args.quick, args.seed, env)
    described = ", ".join(
        f"{c['workload']}{' ' + LABELS[c['against']] if c['against'] != 'tinygrad' else ''} "
        f"({c['dtype']}, max |diff|/max|grad| {c['worst_diff_over_max']:.1e})" for c in checks
    )
    print(f"gradient check: OK, the NumPy floor's loss, gradients and one-step update match "
          f"tinygrad_edu's for {described}", flush=True)

    samples = {name: {impl: [] for impl in impls} for name in args.workloads}
    raw = []
    started = time.time()
    for round_number in range(args.rounds):
        order = impls if round_number % 2 == 0 else impls[::-1]
        for name in args.workloads:
            for impl in order:
                if impl == "compiled" and WORKLOADS[name].compiled_target is None:
                    continue  # no compiled version of this workload
                arguments = [name, impl, "--seed", str(args.seed)] + (["--quick"] if args.quick else [])
                code, result, stderr = run_worker(arguments, env)
                if code != 0 or result is None:
                    sys.exit(f"ABORTED: worker {name} {LABELS[impl]} failed (exit {code}):\n{stderr.strip()}")
                samples[name][impl].append(result["value"])
                raw.append({"round": round_number + 1, **result})
                spec = WORKLOADS[name]
                print(f"[round {round_number + 1}/{args.rounds}] {name} {LABELS[impl]}: "
                      f"{format_value(spec, result['value'], args.quick)} {unit_label(spec)}",
                      file=sys.stderr, flush=True)

    results = {}
    for name in args.workloads:
        spec = WORKLOADS[name]
        row = {impl: summary(values) for impl, values in samples[name].items() if values}
        row["ratio_of_medians"] = row["tinygrad"]["median"] / row["floor"]["median"]
        # Each round's own ratio: its two processes ran back to back, under the same drift.
        row["round_ratios"] = [t / f for t, f in zip(samples[name]["tinygrad"], samples[name]["floor"])]
        row["ratio"] = statistics.median(row["round_ratios"])
        if "compiled" in row:  # issue 20: the same step through tg.compile, with its own target
            row["compiled_ratio"] = statistics.median(
                [c / f for c, f in zip(samples[name]["compiled"], samples[name]["floor"])])
            row["compiled_met"] = row["compiled_ratio"] <= spec.compiled_target
        if "torch" in row:
            row["torch_ratio"] = statistics.median(
                [t / f for t, f in zip(samples[name]["torch"], samples[name]["floor"])])
        row["target"], row["met"] = spec.target, row["ratio"] <= spec.target
        results[name] = row

    print()
    print(render_table(results, impls, args.quick))
    print()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"ratio of medians = median(tinygrad_edu) / median(NumPy floor); ratio (median of rounds) = "
          f"median over rounds of tinygrad_edu / floor within the round, the verdict's basis. "
          f"Quote ratios, not absolute times. "
          f"{time.time() - started:.0f} s of measurement; load average at end: {load}")
    if args.json:
        document = {
            "meta": {"threads": args.threads, "blas": blas, "rounds": args.rounds, "quick": args.quick,
                     "seed": args.seed,
                     "impls": impls, "python": platform.python_version(), "platform": platform.platform(),
                     "cpus": os.cpu_count()},
            "verification": checks, "results": results, "processes": raw,
        }
        Path(args.json).write_text(json.dumps(document, indent=2))
        print(f"raw numbers written to {args.json}")
    found = regressions(results)
    if found and args.quick:
        print("regression guard (not enforced with --quick): " + "; ".join(found))
    elif found:
        print("\n".join(f"REGRESSION {line}" for line in found))
        return 1
    else:
        print(f"regression guard: every ratio is within {REGRESSION_FACTOR:g} x its target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
