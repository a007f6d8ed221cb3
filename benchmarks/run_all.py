"""Run every benchmark and write one markdown report.

    python benchmarks/run_all.py [--threads N] [--out benchmarks/RESULTS.md] [--update-readme]
                                 [--only bench_replknet ...]

Each ``benchmarks/bench_*.py`` exposes ``run(**defaults) -> (results, notes)``; every ratio
is measured inside one process (ours and the baseline timed round-robin, median of repeats
after warm-up) with the intra-op threads pinned, and the machine is printed with the table.
``--update-readme`` replaces the block between ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` in docs/benchmarks.md (linked from the README), so the docs show
the latest run.
"""
import argparse
import datetime
import glob
import importlib
import os.path as osp
import platform
import sys

BENCH_DIR = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(BENCH_DIR)
sys.path.insert(0, REPO)
sys.path.insert(0, BENCH_DIR)

from timing import machine_summary, pin_threads, results_table  # noqa: E402

START, END = '<!-- benchmarks:start -->', '<!-- benchmarks:end -->'


def discover():
    return sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(f'{BENCH_DIR}/bench_*.py'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=0, help='0: all cores')
    parser.add_argument('--out', default=osp.join(BENCH_DIR, 'RESULTS.md'))
    parser.add_argument('--update-readme', action='store_true')
    parser.add_argument('--only', nargs='+', choices=discover(), help='a subset of benchmarks')
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    results, notes = [], []
    for name in args.only or discover():
        print(f'running {name} ...', flush=True)
        found, note = importlib.import_module(name).run()
        results += found
        if note:
            notes.append(f'- {note}')
    report = '\n'.join([
        f'Measured {datetime.date.today().isoformat()} on {platform.node() or "?"}: '
        f'{machine_summary()} (intra-op threads pinned to {threads}), no GPU. '
        'Ratio = ours / baseline, both timed in one process, median of repeats after warm-up.',
        '',
        results_table(results),
        '',
        *notes,
    ])
    with open(args.out, 'w') as f:
        f.write(report + '\n')
    print(report)
    if args.update_readme:
        path = osp.join(REPO, 'docs', 'benchmarks.md')
        text = open(path).read()
        if START not in text or END not in text:
            raise SystemExit(f'{path} has no {START} ... {END} block to update')
        head, rest = text.split(START, 1)
        text = head + START + '\n' + report + '\n' + END + rest.split(END, 1)[1]
        with open(path, 'w') as f:
            f.write(text)
        print(f'updated the benchmark block of {path}')
    failed = [r for r in results if r.verdict == 'FAIL']
    if failed:
        print(f'{len(failed)} target(s) missed: '
              + '; '.join(f'{r.model} {r.case}' for r in failed))


if __name__ == '__main__':
    main()
