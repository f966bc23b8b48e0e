"""Issue 15's thread scaling: each workload of bench/peers.py with 1 and with 2 threads.

Runs bench/peers.py twice in fresh processes (the BLAS reads its thread count when NumPy
is imported): once as usual (one thread, pinned to one CPU), once with --threads 2 (every
library on two threads, the process pinned to two CPUs). Prints, per workload and
implementation, the time per step with each, the speed-up (1-thread time / 2-thread
time), and the target: the generated step's speed-up at least torch eager's and
jax.jit's (within 5 %, "met within noise": the runs do not tell smaller differences apart).

An idle machine is assumed: the load average before each run is printed, and a run on a
machine whose other work takes a core says so (its speed-ups then mean little).

Usage: python bench/threads.py [--only NAME[,NAME]] [--repeats R] [--steps N] [--quick]
(the workloads of bench/peers.py; default mlp-b32,mlp-b128,mlp-b1024,cnn)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GEN, TORCH, JAX = "generated step", "torch eager", "jax.jit"
DEFAULT = "mlp-b32,mlp-b128,mlp-b1024,cnn"
NOISE = 0.95  # speed-ups within 5 % of each other are not told apart by these runs


def run_peers(threads: int, passed: list[str], directory: str) -> dict:
    """bench/peers.py's medians with `threads` threads; its tables go to stderr."""
    out = Path(directory) / f"threads{threads}.json"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"running bench/peers.py --threads {threads} (load average {load:.2f})",
          file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(HERE / "peers.py"), "--threads", str(threads),
                    "--json", str(out), *passed], check=True, stdout=sys.stderr)
    return {"load": load, **json.loads(out.read_text(encoding="utf-8"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=DEFAULT, help=f"workloads (default {DEFAULT})")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    passed = ["--only", args.only]
    if args.repeats:
        passed += ["--repeats", str(args.repeats)]
    if args.steps:
        passed += ["--steps", str(args.steps)]
    if args.quick:
        passed.append("--quick")
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench/threads.py needs two CPUs this process may run on")
    with tempfile.TemporaryDirectory() as directory:
        one, two = run_peers(1, passed, directory), run_peers(2, passed, directory)
    busy = max(one["load"], two["load"])
    print(f"thread scaling, 1 -> 2 threads (load average before the runs: "
          f"{one['load']:.2f}, {two['load']:.2f}"
          + ("; the machine was busy: the speed-ups mean little" if busy >= 0.5 else "")
          + ")\n")
    unmet = []
    for workload, single in one["medians"].items():
        double = two["medians"].get(workload, {})
        print(workload)
        print(f"  {'implementation':<16}{'1 thread':>12}{'2 threads':>12}{'speed-up':>10}")
        speedup = {}
        for name, seconds in single.items():
            if name not in double:
                continue
            speedup[name] = seconds / double[name]
            scale, unit = (1e6, "us") if seconds < 1e-3 else (1e3, "ms")
            print(f"  {name:<16}{seconds * scale:>9.1f} {unit}{double[name] * scale:>9.1f} "
                  f"{unit}{speedup[name]:>9.2f}x")
        for peer in (TORCH, JAX):
            if GEN in speedup and peer in speedup:
                ratio = speedup[GEN] / speedup[peer]
                verdict = ("met" if ratio >= 1 else "met within noise" if ratio >= NOISE
                           else "NOT met")
                print(f"  target: generated's speed-up >= {peer}'s: {speedup[GEN]:.2f}x vs "
                      f"{speedup[peer]:.2f}x, {verdict}")
                if ratio < NOISE:
                    unmet.append(f"{workload}: generated {speedup[GEN]:.2f}x < {peer} "
                                 f"{speedup[peer]:.2f}x")
        print()
    print("summary: " + ("every target met" if not unmet else
                         f"{len(unmet)} unmet: " + "; ".join(unmet)))


if __name__ == "__main__":
    main()
