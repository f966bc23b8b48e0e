"""Shared by the benchmark scripts: interleaved timing, peak memory and the result table."""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc


def pin_to_one_cpu() -> int | None:
    """Pin the process to one CPU (the lowest it may use), so that every peer runs on one
    core: jax.jit ignores the XLA flags that ask it for one thread and otherwise runs on
    every core (measured: 1.9 cores busy on the 784-256-10 MLP at batch 1,024). The CPU,
    or None where the platform cannot pin."""
    cpus = pin_to_cpus(1)
    return cpus[0] if cpus else None


def pin_to_cpus(count: int) -> tuple[int, ...] | None:
    """Pin the process to `count` CPUs (the lowest it may use), which holds every library's
    threads to that many cores; the CPUs, or None where the platform cannot pin. Raises
    SystemExit when the process may use fewer."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < count:
        raise SystemExit(f"asked for {count} threads, but this process may run on "
                         f"{len(allowed)} CPU(s) only ({allowed})")
    cpus = tuple(allowed[:count])
    os.sched_setaffinity(0, set(cpus))
    return cpus


def time_per_step(step, batches, steps: int, warmup: int = 10) -> float:
    """Seconds per call of `step(*batch)`, cycling through `batches`, after a warm-up."""
    for i in range(warmup):
        step(*batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    return (time.perf_counter() - start) / steps


def interleaved(factories: dict, batches, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each implementation, runs interleaved so that machine
    drift affects every implementation alike. A factory returns a fresh `step`."""
    runs: dict[str, list[float]] = {name: [] for name in factories}
    for _ in range(repeats):
        for name, factory in factories.items():
            runs[name].append(time_per_step(factory(), batches, steps))
    return {name: statistics.median(values) for name, values in runs.items()}


def peak_memory(factory, batches, steps: int) -> int:
    """Peak bytes NumPy (and Python) allocate while running `steps` steps."""
    step = factory()
    step(*batches[0])
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(steps):
        step(*batches[i % len(batches)])
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def table(results: dict[str, float], reference: str, unit: str, scale: float,
          targets: dict[str, str], notes: dict[str, str] | None = None) -> None:
    """One row per implementation: time per step, ratio to `reference`, target, note."""
    notes = notes or {}
    base = results[reference]
    print(f"{'implementation':<24}{unit:>10}{'ratio':>9}{'target':>10}   note")
    for name, seconds in results.items():
        print(f"{name:<24}{seconds * scale:>10.3f}{seconds / base:>8.2f}x"
              f"{targets.get(name, ''):>10}   {notes.get(name, '')}")
