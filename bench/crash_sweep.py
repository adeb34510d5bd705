"""Crash-point sweep: every write operation killed, or failed with ENOSPC/EIO, at each
file-system call it makes, then checked (see tests/crashpoints.py). Needs strace and ptrace.

    python bench/crash_sweep.py                       # everything: bigger templates, durable=True
    python bench/crash_sweep.py --ci                  # what CI runs (python -m pytest -q -m crash)
    python bench/crash_sweep.py --op gc --list        # the kill points of one operation
    python bench/crash_sweep.py --op save --fault KILL --point 7 --keep /tmp/x   # one trial

Prints one row per operation (kill points, trials, failed checks, seconds) and the
failures grouped by check, each with the command that reruns it. Exit code 1 if a
check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from crashpoints import (
    CI_FAULTS,
    CI_SETTINGS,
    ERROR,
    FAULTS,
    OPERATIONS,
    SWEEP_SETTINGS,
    Harness,
    HarnessError,
    Result,
    pattern,
    scratch_dir,
)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--ci", action="store_true", help="the CI configuration: tiny templates, the command line, not durable, "
                             "3 seed files, faults KILL and ERROR")
    parser.add_argument("--op", type=_csv, default=list(OPERATIONS),
                        help=f"operations, comma-separated (default all: {', '.join(OPERATIONS)})")
    parser.add_argument("--fault", type=_csv,
                        help="faults, comma-separated: KILL, ENOSPC, EIO, or ERROR (ENOSPC where "
                             "the call allocates space, else EIO); default all three, "
                             f"with --ci {','.join(CI_FAULTS)}")
    parser.add_argument("--point", type=lambda t: [int(p) for p in _csv(t)],
                        help="kill point indexes, comma-separated (default all; see --list)")
    parser.add_argument("--list", action="store_true", help="print the kill points and stop")
    parser.add_argument("--size", type=int, help="extra checkpoints in the templates")
    parser.add_argument("--durable", action=argparse.BooleanOptionalAction,
                        help="open repositories with durable=True (library calls only)")
    parser.add_argument("--via", choices=("cli", "library"), help="run the command or the library call")
    parser.add_argument("--seed-files", type=int, help="seed files imported (0: all)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="trials run at once (default: the cores, at most 4)")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it, with "
                        "strace's logs and each repository as the fault left it (repo-after-fault)")
    parser.add_argument("--json", type=Path, help="write the figures and failures as JSON")
    args = parser.parse_args(argv)
    if args.fault is None:
        args.fault = list(CI_FAULTS if args.ci else FAULTS)
    unknown = [op for op in args.op if op not in OPERATIONS] + \
              [f for f in args.fault if f not in (*FAULTS, ERROR)]
    if unknown:
        parser.error(f"unknown operation or fault: {', '.join(unknown)}")
    settings = dict(CI_SETTINGS if args.ci else SWEEP_SETTINGS)
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings["durable"] and settings["via"] == "cli":
        parser.error("--durable needs --via library (the command has no durable option)")

    workdir = args.keep or scratch_dir()
    workdir.mkdir(parents=True, exist_ok=args.keep is None)
    started = time.perf_counter()
    try:
        harness = Harness(workdir, **settings, keep=args.keep is not None)
    except HarnessError as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    results: list[Result] = []
    try:
        print(f"settings: {settings}, workdir: {workdir}")
        if args.list:
            for name in args.op:
                points, _ = harness.record(OPERATIONS[name])
                print(f"{name}: {len(points)} kill points")
                for point in points:
                    print(f"  {point.index:3d}  process {point.process}  {point.call}")
            return 0
        print(f"| {'operation':22} | points | {' | '.join(f'{f:>6}' for f in args.fault)} "
              f"| failed checks | seconds |")
        for name in args.op:
            result = harness.run(name, args.fault, args.point, jobs=args.jobs)
            results.append(result)
            print(f"| {name:22} | {len(result.points):6} | "
                  f"{' | '.join(f'{result.trials.get(f, 0):6}' for f in args.fault)} "
                  f"| {len(result.failures):13} | {result.seconds:7.1f} |", flush=True)
    finally:
        harness.close()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    trials = sum(sum(r.trials.values()) for r in results)
    kill_points = sum(len(r.points) for r in results)
    seconds = time.perf_counter() - started
    print(f"\n{len(results)} operations, {kill_points} kill points, {trials} trials "
          f"({', '.join(args.fault)}), {seconds:.0f} s; {harness.retried} trial(s) run again")
    for result in results:
        if result.failures:
            print("\n" + result.report())
    distinct: dict[tuple[str, str], set[str]] = {}
    for result in results:
        for failure in result.failures:
            distinct.setdefault((failure.check, pattern(failure.message)), set()).add(result.op)
    if distinct:
        print(f"\n{len(distinct)} distinct failures (check: message, operations):")
        for (check, message), ops in sorted(distinct.items()):
            print(f"- {check}: {message[:300]}  [{', '.join(sorted(ops))}]")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": settings, "seconds": seconds, "trials": trials, "points": kill_points,
            "operations": [{"op": r.op, "points": len(r.points), "trials": r.trials,
                            "seconds": r.seconds, "failures": [str(f) for f in r.failures]}
                           for r in results]}, indent=2))
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
