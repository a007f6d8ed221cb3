"""Shared timing helpers for the benchmarks: pinned threads, warm-up, median of repeats."""
import platform
import statistics
import time
from typing import Callable, Dict, List

import torch


def pin_threads(num_threads: int = 0) -> int:
    """Fix torch's intra-op threads (default: all cores) so runs are comparable; returns it."""
    import os
    num_threads = num_threads or os.cpu_count() or 1
    torch.set_num_threads(num_threads)
    return num_threads


def machine_summary() -> str:
    return (f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, '
            f'torch {torch.__version__}')


def median_time(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved_medians(fns: Dict[str, Callable[[], object]], warmup: int = 2,
                        repeats: int = 5) -> Dict[str, float]:
    """Median wall time of each function, timed round-robin so that drifts in machine load hit
    every candidate alike (ratios measured this way are stable where back-to-back runs are not)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(rows, header=('case', 'ours (s)', 'baseline (s)', 'ratio', 'target', 'pass')) -> str:
    """A markdown table; each row is (case, ours, baseline, target ratio or None)."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for case, ours, base, target in rows:
        ratio = ours / base
        ok = '' if target is None else ('yes' if ratio <= target else 'NO')
        tgt = '' if target is None else f'<= {target:.2f}'
        lines.append(f'| {case} | {ours:.3f} | {base:.3f} | {ratio:.2f} | {tgt} | {ok} |')
    return '\n'.join(lines)
