"""Timing shared by the benchmark scripts."""
import statistics
import time


def median_seconds(fn, repeats):
    """Runs fn() `repeats` times; the median wall time in seconds (the machine is shared and noisy)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
