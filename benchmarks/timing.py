"""Shared timing helpers for the benchmarks: pinned threads, warm-up, median of repeats."""
import argparse
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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


@dataclass
class Result:
    """One measured comparison: ``ours`` and ``baseline`` seconds, timed in one process."""
    model: str
    input: str
    case: str
    ours: float
    baseline: float
    target: Optional[float] = None  # the bound on ours / baseline, if any
    # The bound is a GPU claim (e.g. the shift-wise paper's fused CUDA kernel): on a CPU a
    # miss is expected and reported as 'GPU target', not as a failure.
    gpu_target: bool = False

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ''
        if self.ratio <= self.target:
            return 'pass'
        return 'GPU target' if self.gpu_target else 'FAIL'


def results_table(results: Sequence[Result]) -> str:
    """The markdown table every benchmark prints and ``run_all.py`` collects."""
    lines = ['| model | input | case | ours (s) | baseline (s) | ratio | target | pass |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        target = '' if r.target is None else f'<= {r.target:.2f}' + (' (GPU)' * r.gpu_target)
        lines.append(f'| {r.model} | {r.input} | {r.case} | {r.ours:.3f} | {r.baseline:.3f} | '
                     f'{r.ratio:.2f} | {target} | {r.verdict} |')
    return '\n'.join(lines)


def bench_main(doc: str, run: Callable[..., Tuple[List[Result], str]], **defaults) -> None:
    """Command line of a benchmark script: ``--threads`` plus one ``--name`` option per keyword
    of ``run`` given in ``defaults``; prints the machine, the notes and the table."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=0, help='0: all cores')
    for name, value in defaults.items():
        parser.add_argument(f'--{name}', type=type(value), default=value)
    args = vars(parser.parse_args())
    pin_threads(args.pop('threads'))
    results, notes = run(**args)
    print(f'# {machine_summary()}')
    if notes:
        print(notes)
    print(results_table(results))
